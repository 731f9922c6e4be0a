/* Shape inference and host evaluation.
 *
 * nn_infer() walks the live nodes in order, checks each node's inputs
 * (ranks, dtypes, matching dims) and computes output shapes. When every input
 * of a shape-style op is known, the output is computed right away with the
 * small host loops below; this is both constant folding and the way
 * Shape-derived reshape targets follow the batch size. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Results of plan-time evaluation above this many elements are refused: they
 * would be weights blown up by a hostile file, not shapes. */
#define NN_MAX_KNOWN_ELEMS ((int64_t)1 << 26)
/* Largest activation tensor we accept (elements). */
#define NN_MAX_ELEMS ((int64_t)1 << 34)

int64_t nn_numel(const nn_value *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++)
        n *= v->dims[i];
    return n;
}

int nn_value_bytes(const nn_value *v, size_t *bytes)
{
    size_t n = nn_dtype_size(v->dtype);
    for (int i = 0; i < v->ndim; i++)
        if (!dp_mul_ok(n, (size_t)v->dims[i], &n))
            return dp_set_error(DP_ERR_NOMEM, "tensor '%s' size overflows", v->name);
    *bytes = n;
    return 0;
}

static int set_shape(const nn_node *n, nn_value *v, int ndim, const int64_t *dims, int dtype)
{
    if (ndim < 0 || ndim > DP_MAX_DIMS)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "output rank %d (at most %d)", ndim,
                             DP_MAX_DIMS);
    int64_t cnt = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return nn_node_error(n, DP_ERR_FORMAT, "output '%s' would have negative dim %lld",
                                 v->name, (long long)dims[i]);
        if (dims[i] > 0 && cnt > NN_MAX_ELEMS / dims[i])
            return nn_node_error(n, DP_ERR_NOMEM, "output '%s' is too large", v->name);
        cnt *= dims[i];
    }
    v->ndim = ndim;
    memmove(v->dims, dims, (size_t)ndim * sizeof *dims);
    v->dtype = dtype;
    return 0;
}

static int64_t get_i(const nn_value *v, int64_t i)
{
    switch (v->dtype) {
    case DP_I64:
        return ((const int64_t *)v->data)[i];
    case DP_I32:
        return ((const int32_t *)v->data)[i];
    case DP_BOOL:
        return ((const uint8_t *)v->data)[i];
    default:
        return (int64_t)((const float *)v->data)[i];
    }
}

/* Reads a known 1-D int tensor (axes, shape, pads...). */
static int read_ints(const nn_node *n, const nn_value *v, int64_t *dst, int cap, int *count,
                     const char *what)
{
    if (!v->known) return nn_node_error(n, DP_ERR_UNSUPPORTED, "%s must be a constant", what);
    if (v->dtype != DP_I64 && v->dtype != DP_I32)
        return nn_node_error(n, DP_ERR_FORMAT, "%s must be int64", what);
    int64_t cnt = nn_numel(v);
    if (v->ndim > 1 || cnt > cap)
        return nn_node_error(n, DP_ERR_FORMAT, "%s has %lld values, at most %d", what,
                             (long long)cnt, cap);
    for (int64_t i = 0; i < cnt; i++)
        dst[i] = get_i(v, i);
    *count = (int)cnt;
    return 0;
}

static int norm_axis(const nn_node *n, int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank)
        return nn_node_error(n, DP_ERR_FORMAT, "axis %lld out of range for rank %d",
                             (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

static int broadcast(const nn_node *n, const nn_value *a, const nn_value *b, int *ndim,
                     int64_t *dims)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return nn_node_error(n, DP_ERR_FORMAT, "shapes of '%s' and '%s' do not broadcast",
                                 a->name, b->name);
        dims[i] = da == 1 ? db : da;
    }
    *ndim = r;
    return 0;
}

/* Conv/pool geometry for one spatial dim. */
int nn_window(const nn_node *n, int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pl,
              int64_t *pr, bool ceil_mode, int64_t *out);
int nn_window(const nn_node *n, int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pl,
              int64_t *pr, bool ceil_mode, int64_t *out)
{
    if (k < 1 || s < 1 || d < 1 || *pl < 0 || *pr < 0 || k > (1 << 20) || s > (1 << 20) ||
        d > (1 << 20) || *pl > (1 << 20) || *pr > (1 << 20))
        return nn_node_error(n, DP_ERR_FORMAT, "bad kernel/stride/dilation/pad values");
    int64_t ek = (k - 1) * d + 1;
    int ap = n->a.auto_pad;
    if (ap == 1 || ap == 2) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + ek - in;
        if (total < 0) total = 0;
        if (ap == 1) {
            *pl = total / 2;
            *pr = total - *pl;
        } else {
            *pr = total / 2;
            *pl = total - *pr;
        }
        return 0;
    }
    if (ap == 3) *pl = *pr = 0;
    int64_t span = in + *pl + *pr - ek;
    if (span < 0)
        return nn_node_error(n, DP_ERR_FORMAT, "kernel (%lld) larger than padded input (%lld)",
                             (long long)ek, (long long)(in + *pl + *pr));
    if (ceil_mode) {
        *out = (span + s - 1) / s + 1;
        /* the last window must start inside the input or the left padding */
        if ((*out - 1) * s >= in + *pl) (*out)--;
    } else {
        *out = span / s + 1;
    }
    return 0;
}

static int infer_conv(dp_model *m, nn_node *n)
{
    (void)m;
    nn_value *x = &m->values[n->in[0]], *w = &m->values[n->in[1]];
    nn_value *y = &m->values[n->out[0]];
    int sp = x->ndim - 2;
    if (sp < 1 || sp > 3 || w->ndim != x->ndim)
        return nn_node_error(n, DP_ERR_UNSUPPORTED,
                             "needs 3-D to 5-D input and weights of the "
                             "same rank (got %d and %d)",
                             x->ndim, w->ndim);
    if (x->dtype != DP_F32 || w->dtype != DP_F32)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float tensors");
    nn_attrs *a = &n->a;
    if ((a->nk && a->nk != sp) || (a->ns && a->ns != sp) || (a->nd && a->nd != sp) ||
        (a->np && a->np != 2 * sp))
        return nn_node_error(n, DP_ERR_FORMAT, "attribute lengths do not match %d spatial dims",
                             sp);
    int64_t g = a->group;
    if (g < 1) return nn_node_error(n, DP_ERR_FORMAT, "group must be positive");
    if (a->nos && a->nos < sp)
        return nn_node_error(n, DP_ERR_FORMAT, "output_shape has %d values for %d spatial dims",
                             a->nos, sp);
    int64_t dims[DP_MAX_DIMS];
    dims[0] = x->dims[0];
    if (n->op == OP_CONV) {
        if (x->dims[1] != w->dims[1] * g || w->dims[0] % g)
            return nn_node_error(n, DP_ERR_FORMAT,
                                 "input channels %lld do not match weights "
                                 "%lld x group %lld",
                                 (long long)x->dims[1], (long long)w->dims[1], (long long)g);
        dims[1] = w->dims[0];
    } else {
        if (x->dims[1] != w->dims[0] || w->dims[0] % g)
            return nn_node_error(n, DP_ERR_FORMAT, "input channels %lld do not match weights %lld",
                                 (long long)x->dims[1], (long long)w->dims[0]);
        dims[1] = w->dims[1] * g;
    }
    if (n->n_in > 2 && n->in[2] >= 0) {
        nn_value *b = &m->values[n->in[2]];
        if (b->ndim != 1 || b->dims[0] != dims[1] || b->dtype != DP_F32)
            return nn_node_error(n, DP_ERR_FORMAT, "bias must be 1-D with %lld values",
                                 (long long)dims[1]);
    }
    for (int i = 0; i < sp; i++) {
        int64_t k = w->dims[2 + i];
        if (a->nk && a->kernel[i] != k)
            return nn_node_error(n, DP_ERR_FORMAT, "kernel_shape does not match the weights");
        int64_t s = a->ns ? a->strides[i] : 1, d = a->nd ? a->dil[i] : 1;
        int64_t pl = a->np ? a->pads[i] : 0, pr = a->np ? a->pads[i + sp] : 0;
        if (n->op == OP_CONV) {
            int rc = nn_window(n, x->dims[2 + i], k, s, d, &pl, &pr, false, &dims[2 + i]);
            if (rc) return rc;
        } else {
            int64_t op = a->nop ? a->out_pad[i] : 0;
            if (s < 1 || d < 1 || k < 1 || op < 0 || op >= s + d || pl < 0 || pr < 0)
                return nn_node_error(n, DP_ERR_FORMAT, "bad stride/dilation/padding values");
            int64_t full = s * (x->dims[2 + i] - 1) + op + (k - 1) * d + 1;
            if (a->nos) {
                dims[2 + i] = a->out_shape[a->nos - sp + i];
            } else if (a->auto_pad == 1 || a->auto_pad == 2) {
                dims[2 + i] = x->dims[2 + i] * s;
            } else {
                dims[2 + i] = full - pl - pr;
            }
            if (dims[2 + i] < 1 || dims[2 + i] > full + (k - 1) * d + 1)
                return nn_node_error(n, DP_ERR_FORMAT, "bad output size");
        }
    }
    return set_shape(n, y, x->ndim, dims, DP_F32);
}

static int infer_pool(dp_model *m, nn_node *n)
{
    nn_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int sp = x->ndim - 2;
    if (sp < 1 || sp > 3 || x->dtype != DP_F32)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "needs a float 3-D to 5-D input");
    int64_t dims[DP_MAX_DIMS] = {x->dims[0], x->dims[1]};
    if (n->op == OP_GAP || n->op == OP_GMP) {
        for (int i = 0; i < sp; i++) {
            if (x->dims[2 + i] < 1) return nn_node_error(n, DP_ERR_FORMAT, "empty spatial dims");
            dims[2 + i] = 1;
        }
        return set_shape(n, y, x->ndim, dims, DP_F32);
    }
    nn_attrs *a = &n->a;
    if (a->nk != sp || (a->ns && a->ns != sp) || (a->nd && a->nd != sp) ||
        (a->np && a->np != 2 * sp))
        return nn_node_error(n, DP_ERR_FORMAT,
                             "kernel_shape/strides/pads do not match the "
                             "input's %d spatial dims",
                             sp);
    if (n->n_out > 1 && n->out[1] >= 0)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "the Indices output is not supported");
    for (int i = 0; i < sp; i++) {
        int64_t pl = a->np ? a->pads[i] : 0, pr = a->np ? a->pads[i + sp] : 0;
        int64_t s = a->ns ? a->strides[i] : 1, d = a->nd ? a->dil[i] : 1;
        int rc = nn_window(n, x->dims[2 + i], a->kernel[i], s, d, &pl, &pr, a->ceil_mode != 0,
                           &dims[2 + i]);
        if (rc) return rc;
    }
    return set_shape(n, y, x->ndim, dims, DP_F32);
}

static int infer_matmul(dp_model *m, nn_node *n)
{
    nn_value *a = &m->values[n->in[0]], *b = &m->values[n->in[1]];
    if (a->dtype != DP_F32 || b->dtype != DP_F32)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float tensors");
    if (a->ndim < 1 || b->ndim < 1)
        return nn_node_error(n, DP_ERR_FORMAT, "MatMul inputs must have rank >= 1");
    int64_t ka = a->dims[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->dims[0] : b->dims[b->ndim - 2];
    if (ka != kb)
        return nn_node_error(n, DP_ERR_FORMAT, "inner dims differ (%lld vs %lld)", (long long)ka,
                             (long long)kb);
    /* batch dims broadcast */
    int ra = a->ndim > 2 ? a->ndim - 2 : 0, rb = b->ndim > 2 ? b->ndim - 2 : 0;
    int r = ra > rb ? ra : rb;
    int64_t dims[DP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ra), ib = i - (r - rb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return nn_node_error(n, DP_ERR_FORMAT, "batch dims do not broadcast");
        dims[nd++] = da == 1 ? db : da;
    }
    if (a->ndim >= 2) dims[nd++] = a->dims[a->ndim - 2];
    if (b->ndim >= 2) dims[nd++] = b->dims[b->ndim - 1];
    return set_shape(n, &m->values[n->out[0]], nd, dims, DP_F32);
}

static int infer_gemm(dp_model *m, nn_node *n)
{
    nn_value *a = &m->values[n->in[0]], *b = &m->values[n->in[1]];
    if (a->ndim != 2 || b->ndim != 2 || a->dtype != DP_F32 || b->dtype != DP_F32)
        return nn_node_error(n, DP_ERR_FORMAT, "Gemm needs 2-D float inputs");
    int64_t M = n->a.trans_a ? a->dims[1] : a->dims[0], K = n->a.trans_a ? a->dims[0] : a->dims[1];
    int64_t K2 = n->a.trans_b ? b->dims[1] : b->dims[0], N = n->a.trans_b ? b->dims[0] : b->dims[1];
    if (K != K2) return nn_node_error(n, DP_ERR_FORMAT, "inner dims differ");
    int64_t dims[2] = {M, N};
    if (n->n_in > 2 && n->in[2] >= 0) {
        nn_value *c = &m->values[n->in[2]];
        if (c->ndim > 2 || c->dtype != DP_F32)
            return nn_node_error(n, DP_ERR_FORMAT, "C must be a float of rank <= 2");
        for (int i = 0; i < c->ndim; i++) {
            int64_t want = dims[2 - c->ndim + i];
            if (c->dims[i] != 1 && c->dims[i] != want)
                return nn_node_error(n, DP_ERR_FORMAT, "C does not broadcast to (M, N)");
        }
    }
    return set_shape(n, &m->values[n->out[0]], 2, dims, DP_F32);
}

/* Squeeze/Unsqueeze/Reduce axes from attribute or (newer opsets) input. */
static int get_axes(dp_model *m, nn_node *n, int input, int64_t *axes, int *naxes, bool *given)
{
    *given = false;
    *naxes = 0;
    if (n->a.has_axes) {
        memcpy(axes, n->a.axes, (size_t)n->a.naxes * sizeof *axes);
        *naxes = n->a.naxes;
        *given = true;
    }
    if (n->n_in > input && n->in[input] >= 0) {
        int rc = read_ints(n, &m->values[n->in[input]], axes, DP_MAX_DIMS, naxes, "axes");
        if (rc) return rc;
        *given = true;
    }
    return 0;
}

static int infer_node(dp_model *m, nn_node *n)
{
    int rc = 0;
    nn_attrs *a = &n->a;
    nn_value *x = n->n_in > 0 && n->in[0] >= 0 ? &m->values[n->in[0]] : NULL;
    nn_value *y = n->n_out > 0 && n->out[0] >= 0 ? &m->values[n->out[0]] : NULL;
    int64_t dims[DP_MAX_DIMS];
    int nd = 0;
    static const int min_in[OP_COUNT] = {
        [OP_CONV] = 2,  [OP_CONVT] = 2,  [OP_BN] = 5,      [OP_ADD] = 2,
        [OP_SUB] = 2,   [OP_MUL] = 2,    [OP_DIV] = 2,     [OP_MAX] = 1,
        [OP_MIN] = 1,   [OP_GEMM] = 2,   [OP_MATMUL] = 2,  [OP_GATHER] = 2,
        [OP_SLICE] = 1, [OP_CONCAT] = 1, [OP_RESHAPE] = 2, [OP_PAD] = 1,
    };
    int need = min_in[n->op] ? min_in[n->op] : 1;
    if (n->n_in < need)
        return nn_node_error(n, DP_ERR_FORMAT, "needs at least %d inputs, has %d", need, n->n_in);
    for (int k = 0; k < need; k++)
        if (n->in[k] < 0) return nn_node_error(n, DP_ERR_FORMAT, "required input %d is empty", k);
    if (!y) return nn_node_error(n, DP_ERR_FORMAT, "has no output");
    for (int o = 1; o < n->n_out; o++)
        if (n->out[o] >= 0 && m->values[n->out[o]].n_uses + m->values[n->out[o]].keep > 0 &&
            n->op != OP_DROPOUT)
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "extra output %d is not supported", o);
    switch (n->op) {
    case OP_CONV:
    case OP_CONVT:
        return infer_conv(m, n);
    case OP_BN: {
        if (x->ndim < 2 || x->dtype != DP_F32)
            return nn_node_error(n, DP_ERR_FORMAT, "input must be float of rank >= 2");
        for (int k = 1; k < 5; k++) {
            nn_value *p = &m->values[n->in[k]];
            if (p->ndim != 1 || p->dims[0] != x->dims[1] || p->dtype != DP_F32)
                return nn_node_error(n, DP_ERR_FORMAT, "parameter %d must be 1-D with %lld values",
                                     k, (long long)x->dims[1]);
        }
        return set_shape(n, y, x->ndim, x->dims, DP_F32);
    }
    case OP_RELU:
    case OP_LEAKY:
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
    case OP_SOFTMAX:
    case OP_LOGSOFTMAX:
        if (x->dtype != DP_F32 && !(x->dtype == DP_I64 && (n->op == OP_NEG || n->op == OP_ABS)))
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float tensors");
        if (n->op == OP_SOFTMAX || n->op == OP_LOGSOFTMAX) {
            int ax = 0;
            if (x->ndim < 1) return nn_node_error(n, DP_ERR_FORMAT, "input must have rank >= 1");
            if ((rc = norm_axis(n, a->axis, x->ndim, &ax))) return rc;
        }
        return set_shape(n, y, x->ndim, x->dims, x->dtype);
    case OP_CLIP:
        if (x->dtype != DP_F32) return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float tensors");
        for (int k = 1; k < n->n_in && k < 3; k++) {
            if (n->in[k] < 0) continue;
            nn_value *b = &m->values[n->in[k]];
            if (!b->known) return nn_node_error(n, DP_ERR_UNSUPPORTED, "min/max must be constants");
            if (nn_numel(b) != 1 || b->dtype != DP_F32)
                return nn_node_error(n, DP_ERR_FORMAT, "min/max must be float scalars");
        }
        return set_shape(n, y, x->ndim, x->dims, DP_F32);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MAX:
    case OP_MIN: {
        if (n->n_in == 1) return set_shape(n, y, x->ndim, x->dims, x->dtype);
        if (n->n_in != 2)
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "only 1 or 2 inputs are supported");
        if (n->in[1] < 0) return nn_node_error(n, DP_ERR_FORMAT, "input 1 is empty");
        nn_value *b = &m->values[n->in[1]];
        if (x->dtype != b->dtype) return nn_node_error(n, DP_ERR_FORMAT, "input types differ");
        if (x->dtype != DP_F32 && x->dtype != DP_I64)
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float and int64 tensors");
        if ((rc = broadcast(n, x, b, &nd, dims))) return rc;
        return set_shape(n, y, nd, dims, x->dtype);
    }
    case OP_MAXPOOL:
    case OP_AVGPOOL:
    case OP_GAP:
    case OP_GMP:
        return infer_pool(m, n);
    case OP_CONCAT: {
        int ax = 0;
        if (x->ndim < 1) return nn_node_error(n, DP_ERR_FORMAT, "inputs must have rank >= 1");
        if ((rc = norm_axis(n, a->axis, x->ndim, &ax))) return rc;
        memcpy(dims, x->dims, sizeof dims);
        dims[ax] = 0;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0) return nn_node_error(n, DP_ERR_FORMAT, "empty input");
            nn_value *v = &m->values[n->in[k]];
            if (v->ndim != x->ndim || v->dtype != x->dtype)
                return nn_node_error(n, DP_ERR_FORMAT, "input '%s' rank/type differ", v->name);
            for (int i = 0; i < x->ndim; i++)
                if (i != ax && v->dims[i] != x->dims[i])
                    return nn_node_error(n, DP_ERR_FORMAT, "input '%s' dims differ", v->name);
            dims[ax] += v->dims[ax];
        }
        return set_shape(n, y, x->ndim, dims, x->dtype);
    }
    case OP_GEMM:
        return infer_gemm(m, n);
    case OP_MATMUL:
        return infer_matmul(m, n);
    case OP_FLATTEN: {
        int ax = (int)a->axis;
        if (ax < 0) ax += x->ndim;
        if (ax < 0 || ax > x->ndim) return nn_node_error(n, DP_ERR_FORMAT, "axis out of range");
        dims[0] = dims[1] = 1;
        for (int i = 0; i < x->ndim; i++)
            dims[i < ax ? 0 : 1] *= x->dims[i];
        return set_shape(n, y, 2, dims, x->dtype);
    }
    case OP_RESHAPE: {
        int64_t sh[DP_MAX_DIMS];
        int cnt;
        if ((rc = read_ints(n, &m->values[n->in[1]], sh, DP_MAX_DIMS, &cnt, "shape"))) return rc;
        int64_t total = nn_numel(x), prod = 1;
        int neg = -1;
        for (int i = 0; i < cnt; i++) {
            if (sh[i] == 0 && !a->allowzero) {
                if (i >= x->ndim) return nn_node_error(n, DP_ERR_FORMAT, "0 past input rank");
                sh[i] = x->dims[i];
            }
            if (sh[i] == -1) {
                if (neg >= 0) return nn_node_error(n, DP_ERR_FORMAT, "more than one -1 in shape");
                neg = i;
                continue;
            }
            if (sh[i] < 0) return nn_node_error(n, DP_ERR_FORMAT, "negative dim in shape");
            if (sh[i] && prod > NN_MAX_ELEMS / sh[i])
                return nn_node_error(n, DP_ERR_FORMAT, "shape too large");
            prod *= sh[i];
        }
        if (neg >= 0) {
            if (prod == 0 || total % prod)
                return nn_node_error(n, DP_ERR_FORMAT, "cannot infer -1 in shape");
            sh[neg] = total / prod;
            prod *= sh[neg];
        }
        if (prod != total)
            return nn_node_error(n, DP_ERR_FORMAT, "shape has %lld elements, input %lld",
                                 (long long)prod, (long long)total);
        return set_shape(n, y, cnt, sh, x->dtype);
    }
    case OP_TRANSPOSE: {
        int64_t perm[DP_MAX_DIMS];
        if (a->nperm) {
            if (a->nperm != x->ndim)
                return nn_node_error(n, DP_ERR_FORMAT, "perm length differs from rank");
            bool seen[DP_MAX_DIMS] = {0};
            for (int i = 0; i < x->ndim; i++) {
                if (a->perm[i] < 0 || a->perm[i] >= x->ndim || seen[a->perm[i]])
                    return nn_node_error(n, DP_ERR_FORMAT, "perm is not a permutation");
                seen[a->perm[i]] = true;
                perm[i] = a->perm[i];
            }
        } else {
            for (int i = 0; i < x->ndim; i++)
                perm[i] = x->ndim - 1 - i;
        }
        for (int i = 0; i < x->ndim; i++)
            dims[i] = x->dims[perm[i]];
        return set_shape(n, y, x->ndim, dims, x->dtype);
    }
    case OP_SQUEEZE:
    case OP_UNSQUEEZE: {
        int64_t axes[DP_MAX_DIMS];
        int na;
        bool given;
        if ((rc = get_axes(m, n, 1, axes, &na, &given))) return rc;
        if (n->op == OP_SQUEEZE) {
            bool drop[DP_MAX_DIMS] = {0};
            for (int i = 0; i < na; i++) {
                int ax = 0;
                if ((rc = norm_axis(n, axes[i], x->ndim, &ax))) return rc;
                if (x->dims[ax] != 1)
                    return nn_node_error(n, DP_ERR_FORMAT, "cannot squeeze dim %d of size %lld", ax,
                                         (long long)x->dims[ax]);
                drop[ax] = true;
            }
            for (int i = 0; i < x->ndim; i++)
                if (!(given ? drop[i] : x->dims[i] == 1)) dims[nd++] = x->dims[i];
            return set_shape(n, y, nd, dims, x->dtype);
        }
        if (!given) return nn_node_error(n, DP_ERR_FORMAT, "axes are required");
        int r = x->ndim + na;
        if (r > DP_MAX_DIMS) return nn_node_error(n, DP_ERR_UNSUPPORTED, "rank too high");
        bool ins[DP_MAX_DIMS] = {0};
        for (int i = 0; i < na; i++) {
            int ax = 0;
            if ((rc = norm_axis(n, axes[i], r, &ax))) return rc;
            if (ins[ax]) return nn_node_error(n, DP_ERR_FORMAT, "repeated axis");
            ins[ax] = true;
        }
        for (int i = 0, j = 0; i < r; i++)
            dims[i] = ins[i] ? 1 : x->dims[j++];
        return set_shape(n, y, r, dims, x->dtype);
    }
    case OP_PAD: {
        int64_t pads[2 * DP_MAX_DIMS];
        int cnt = 0;
        if (m->opset < 11) {
            memcpy(pads, a->pads_attr, sizeof pads);
            cnt = a->npads_attr;
        } else {
            if (n->n_in < 2 || n->in[1] < 0)
                return nn_node_error(n, DP_ERR_FORMAT, "pads input is required");
            if ((rc = read_ints(n, &m->values[n->in[1]], pads, 2 * DP_MAX_DIMS, &cnt, "pads")))
                return rc;
            if (n->n_in > 3 && n->in[3] >= 0)
                return nn_node_error(n, DP_ERR_UNSUPPORTED, "the axes input is not supported");
            if (n->n_in > 2 && n->in[2] >= 0) {
                nn_value *c = &m->values[n->in[2]];
                if (!c->known || nn_numel(c) != 1 || c->dtype != x->dtype)
                    return nn_node_error(n, DP_ERR_UNSUPPORTED,
                                         "constant_value must be a "
                                         "constant scalar of the input type");
            }
        }
        if (cnt != 2 * x->ndim)
            return nn_node_error(n, DP_ERR_FORMAT, "pads has %d values for rank %d", cnt, x->ndim);
        for (int i = 0; i < x->ndim; i++) {
            if (pads[i] < 0 || pads[i + x->ndim] < 0)
                return nn_node_error(n, DP_ERR_UNSUPPORTED, "negative pads are not supported");
            if (pads[i] > (1 << 24) || pads[i + x->ndim] > (1 << 24))
                return nn_node_error(n, DP_ERR_FORMAT, "pads too large");
            if (a->pad_mode == 1 && (pads[i] >= x->dims[i] || pads[i + x->ndim] >= x->dims[i]))
                return nn_node_error(n, DP_ERR_FORMAT, "reflect pad larger than the input");
            if (a->pad_mode == 2 && x->dims[i] == 0 && pads[i] + pads[i + x->ndim] > 0)
                return nn_node_error(n, DP_ERR_FORMAT, "edge pad of an empty dim");
            dims[i] = x->dims[i] + pads[i] + pads[i + x->ndim];
        }
        return set_shape(n, y, x->ndim, dims, x->dtype);
    }
    case OP_REDUCEMEAN:
    case OP_REDUCEMAX:
    case OP_REDUCESUM: {
        int64_t axes[DP_MAX_DIMS];
        int na;
        bool given, red[DP_MAX_DIMS] = {0};
        if (x->dtype != DP_F32) return nn_node_error(n, DP_ERR_UNSUPPORTED, "only float");
        if ((rc = get_axes(m, n, 1, axes, &na, &given))) return rc;
        if (!given || na == 0) {
            if (a->noop_with_empty_axes) return set_shape(n, y, x->ndim, x->dims, x->dtype);
            for (int i = 0; i < x->ndim; i++)
                red[i] = true;
        }
        for (int i = 0; i < na; i++) {
            int ax = 0;
            if ((rc = norm_axis(n, axes[i], x->ndim, &ax))) return rc;
            red[ax] = true;
        }
        for (int i = 0; i < x->ndim; i++) {
            if (red[i] && x->dims[i] == 0)
                return nn_node_error(n, DP_ERR_UNSUPPORTED, "reducing an empty dim");
            if (!red[i])
                dims[nd++] = x->dims[i];
            else if (a->keepdims)
                dims[nd++] = 1;
        }
        return set_shape(n, y, nd, dims, x->dtype);
    }
    case OP_IDENTITY:
    case OP_DROPOUT:
        if (n->op == OP_DROPOUT && n->n_in > 2 && n->in[2] >= 0) {
            nn_value *t = &m->values[n->in[2]];
            if (!t->known || get_i(t, 0) != 0)
                return nn_node_error(n, DP_ERR_UNSUPPORTED, "training_mode must be false");
        }
        if (n->op == OP_DROPOUT && n->n_out > 1 && n->out[1] >= 0) {
            nn_value *mask = &m->values[n->out[1]];
            if ((rc = set_shape(n, mask, x->ndim, x->dims, DP_BOOL))) return rc;
        }
        return set_shape(n, y, x->ndim, x->dims, x->dtype);
    case OP_SHAPE: {
        int64_t s = 0, e = x->ndim;
        if (a->nstarts) s = a->starts[0];
        if (a->nends) e = a->ends[0];
        if (s < 0) s += x->ndim;
        if (e < 0) e += x->ndim;
        s = s < 0 ? 0 : s > x->ndim ? x->ndim : s;
        e = e < 0 ? 0 : e > x->ndim ? x->ndim : e;
        dims[0] = e > s ? e - s : 0;
        return set_shape(n, y, 1, dims, DP_I64);
    }
    case OP_GATHER: {
        nn_value *idx = &m->values[n->in[1]];
        int ax = 0;
        if (idx->dtype != DP_I64 && idx->dtype != DP_I32)
            return nn_node_error(n, DP_ERR_FORMAT, "indices must be int32/int64");
        if (x->ndim < 1) return nn_node_error(n, DP_ERR_FORMAT, "data must have rank >= 1");
        if ((rc = norm_axis(n, a->axis, x->ndim, &ax))) return rc;
        if (x->ndim - 1 + idx->ndim > DP_MAX_DIMS)
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "output rank too high");
        for (int i = 0; i < ax; i++)
            dims[nd++] = x->dims[i];
        for (int i = 0; i < idx->ndim; i++)
            dims[nd++] = idx->dims[i];
        for (int i = ax + 1; i < x->ndim; i++)
            dims[nd++] = x->dims[i];
        if (idx->known) {
            int64_t cnt = nn_numel(idx);
            for (int64_t i = 0; i < cnt; i++) {
                int64_t j = get_i(idx, i);
                if (j < -x->dims[ax] || j >= x->dims[ax])
                    return nn_node_error(n, DP_ERR_FORMAT, "index %lld out of range", (long long)j);
            }
        }
        return set_shape(n, y, nd, dims, x->dtype);
    }
    case OP_CAST:
        return set_shape(n, y, x->ndim, x->dims, (int)a->to);
    case OP_SLICE: {
        int64_t st[DP_MAX_DIMS], en[DP_MAX_DIMS], ax[DP_MAX_DIMS], sp[DP_MAX_DIMS];
        int ns = 0, ne = 0, na = 0, nst = 0;
        if (m->opset < 10) {
            ns = a->nstarts;
            ne = a->nends;
            memcpy(st, a->starts, sizeof st);
            memcpy(en, a->ends, sizeof en);
            if (a->has_axes) {
                na = a->naxes;
                memcpy(ax, a->axes, sizeof ax);
            }
        } else {
            if (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0)
                return nn_node_error(n, DP_ERR_FORMAT, "starts and ends are required");
            if ((rc = read_ints(n, &m->values[n->in[1]], st, DP_MAX_DIMS, &ns, "starts")) ||
                (rc = read_ints(n, &m->values[n->in[2]], en, DP_MAX_DIMS, &ne, "ends")))
                return rc;
            if (n->n_in > 3 && n->in[3] >= 0 &&
                (rc = read_ints(n, &m->values[n->in[3]], ax, DP_MAX_DIMS, &na, "axes")))
                return rc;
            if (n->n_in > 4 && n->in[4] >= 0 &&
                (rc = read_ints(n, &m->values[n->in[4]], sp, DP_MAX_DIMS, &nst, "steps")))
                return rc;
        }
        if (ns != ne || (na && na != ns) || (nst && nst != ns))
            return nn_node_error(n, DP_ERR_FORMAT, "starts/ends/axes/steps lengths differ");
        /* Store the normalised slice in the node for the host loop. */
        int64_t S[DP_MAX_DIMS], E[DP_MAX_DIMS], T[DP_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++) {
            S[i] = 0;
            E[i] = x->dims[i];
            T[i] = 1;
        }
        bool seen[DP_MAX_DIMS] = {0};
        for (int i = 0; i < ns; i++) {
            int d = 0;
            if ((rc = norm_axis(n, na ? ax[i] : i, x->ndim, &d))) return rc;
            if (seen[d]) return nn_node_error(n, DP_ERR_FORMAT, "repeated axis");
            seen[d] = true;
            int64_t step = nst ? sp[i] : 1, dim = x->dims[d];
            if (step == 0) return nn_node_error(n, DP_ERR_FORMAT, "step 0");
            int64_t s = st[i], e = en[i];
            if (s < 0) s += dim;
            if (e < 0) e += dim;
            if (step > 0) {
                s = s < 0 ? 0 : s > dim ? dim : s;
                e = e < 0 ? 0 : e > dim ? dim : e;
            } else {
                s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
                e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            }
            S[d] = s;
            E[d] = e;
            T[d] = step;
        }
        for (int i = 0; i < x->ndim; i++) {
            int64_t len =
                T[i] > 0 ? (E[i] - S[i] + T[i] - 1) / T[i] : (S[i] - E[i] - T[i] - 1) / -T[i];
            dims[i] = len > 0 ? len : 0;
            a->sl_start[i] = S[i];
            a->sl_step[i] = T[i];
        }
        return set_shape(n, y, x->ndim, dims, x->dtype);
    }
    default:
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported op");
    }
}

/* ---- host evaluation ---- */

bool nn_host_capable(const dp_model *m, const nn_node *n)
{
    (void)m;
    switch (n->op) {
    case OP_SHAPE:
    case OP_GATHER:
    case OP_CAST:
    case OP_CONCAT:
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
    case OP_RESHAPE:
    case OP_FLATTEN:
    case OP_IDENTITY:
    case OP_DROPOUT:
    case OP_SLICE:
    case OP_TRANSPOSE:
    case OP_PAD:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MAX:
    case OP_MIN:
    case OP_NEG:
    case OP_ABS:
    case OP_RELU:
    case OP_SQRT:
    case OP_EXP:
        return true;
    default:
        return false;
    }
}

static void strides_of(const nn_value *v, int64_t *st)
{
    int64_t s = 1;
    for (int i = v->ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= v->dims[i];
    }
}

/* Copies element src[i] of type dt into dst[j] of type dt2. */
static void convert(int dt2, void *dst, int64_t j, int dt, const void *src, int64_t i)
{
    double d = 0;
    int64_t l = 0;
    bool isf = dt == DP_F32;
    switch (dt) {
    case DP_F32:
        d = ((const float *)src)[i];
        break;
    case DP_I64:
        l = ((const int64_t *)src)[i];
        break;
    case DP_I32:
        l = ((const int32_t *)src)[i];
        break;
    case DP_BOOL:
        l = ((const uint8_t *)src)[i];
        break;
    }
    switch (dt2) {
    case DP_F32:
        ((float *)dst)[j] = isf ? (float)d : (float)l;
        break;
    case DP_I64:
        ((int64_t *)dst)[j] = isf ? (isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0) : l;
        break;
    case DP_I32:
        ((int32_t *)dst)[j] = isf ? (isfinite(d) && fabs(d) < 2.1e9 ? (int32_t)d : 0) : (int32_t)l;
        break;
    case DP_BOOL:
        ((uint8_t *)dst)[j] = isf ? d != 0 : l != 0;
        break;
    }
}

static double bin_f(nn_op op, double a, double b)
{
    switch (op) {
    case OP_ADD:
        return a + b;
    case OP_SUB:
        return a - b;
    case OP_MUL:
        return a * b;
    case OP_DIV:
        return a / b;
    case OP_MAX:
        return a > b ? a : b;
    default:
        return a < b ? a : b;
    }
}

static int64_t bin_i(nn_op op, int64_t a, int64_t b)
{
    switch (op) {
    case OP_ADD:
        return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_SUB:
        return (int64_t)((uint64_t)a - (uint64_t)b);
    case OP_MUL:
        return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_DIV:
        return b == 0 || (a == INT64_MIN && b == -1) ? 0 : a / b;
    case OP_MAX:
        return a > b ? a : b;
    default:
        return a < b ? a : b;
    }
}

int nn_host_eval(dp_model *m, const nn_node *n, void *const *in, void *const *out)
{
    const nn_value *x = n->in[0] >= 0 ? &m->values[n->in[0]] : NULL;
    const nn_value *y = &m->values[n->out[0]];
    const nn_attrs *a = &n->a;
    int64_t total = nn_numel(y);
    size_t es = nn_dtype_size(y->dtype);
    int64_t xs[DP_MAX_DIMS], ys[DP_MAX_DIMS];
    strides_of(x, xs);
    strides_of(y, ys);
    switch (n->op) {
    case OP_SHAPE: {
        int64_t s = a->nstarts ? a->starts[0] : 0;
        if (s < 0) s += x->ndim;
        if (s < 0) s = 0;
        for (int64_t i = 0; i < total; i++)
            ((int64_t *)out[0])[i] = x->dims[s + i];
        return 0;
    }
    case OP_IDENTITY:
    case OP_DROPOUT:
    case OP_RESHAPE:
    case OP_FLATTEN:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
        if (out[0] != in[0]) memcpy(out[0], in[0], (size_t)total * es);
        if (n->op == OP_DROPOUT && n->n_out > 1 && n->out[1] >= 0)
            memset(out[1], 1, (size_t)nn_numel(&m->values[n->out[1]]));
        return 0;
    case OP_CAST:
        for (int64_t i = 0; i < total; i++)
            convert(y->dtype, out[0], i, x->dtype, in[0], i);
        return 0;
    case OP_NEG:
    case OP_ABS:
    case OP_RELU:
    case OP_SQRT:
    case OP_LOG:
    case OP_EXP:
        for (int64_t i = 0; i < total; i++) {
            if (y->dtype == DP_F32) {
                float v = ((const float *)in[0])[i];
                v = n->op == OP_NEG    ? -v
                    : n->op == OP_ABS  ? fabsf(v)
                    : n->op == OP_RELU ? (v > 0 ? v : 0)
                    : n->op == OP_SQRT ? sqrtf(v)
                    : n->op == OP_LOG  ? logf(v)
                                       : expf(v);
                ((float *)out[0])[i] = v;
            } else if (y->dtype == DP_I64) {
                int64_t v = ((const int64_t *)in[0])[i];
                v = n->op == OP_NEG   ? (int64_t)(0 - (uint64_t)v)
                    : n->op == OP_ABS ? (v < 0 ? (int64_t)(0 - (uint64_t)v) : v)
                                      : (v > 0 ? v : 0);
                ((int64_t *)out[0])[i] = v;
            } else {
                return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported dtype");
            }
        }
        return 0;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MAX:
    case OP_MIN: {
        if (n->n_in == 1) {
            memcpy(out[0], in[0], (size_t)total * es);
            return 0;
        }
        const nn_value *b = &m->values[n->in[1]];
        int64_t as[DP_MAX_DIMS] = {0}, bs[DP_MAX_DIMS] = {0}, at[DP_MAX_DIMS], bt[DP_MAX_DIMS];
        strides_of(x, at);
        strides_of(b, bt);
        int r = y->ndim;
        for (int i = 0; i < r; i++) {
            int ia = i - (r - x->ndim), ib = i - (r - b->ndim);
            as[i] = ia >= 0 && x->dims[ia] != 1 ? at[ia] : 0;
            bs[i] = ib >= 0 && b->dims[ib] != 1 ? bt[ib] : 0;
        }
        for (int64_t i = 0; i < total; i++) {
            int64_t rem = i, ia = 0, ib = 0;
            for (int d = 0; d < r; d++) {
                int64_t c = rem / ys[d];
                rem -= c * ys[d];
                ia += c * as[d];
                ib += c * bs[d];
            }
            if (y->dtype == DP_F32)
                ((float *)out[0])[i] =
                    (float)bin_f(n->op, ((const float *)in[0])[ia], ((const float *)in[1])[ib]);
            else
                ((int64_t *)out[0])[i] =
                    bin_i(n->op, ((const int64_t *)in[0])[ia], ((const int64_t *)in[1])[ib]);
        }
        return 0;
    }
    case OP_CONCAT: {
        int ax = (int)(a->axis < 0 ? a->axis + x->ndim : a->axis);
        int64_t outer = 1, off = 0;
        for (int i = 0; i < ax; i++)
            outer *= y->dims[i];
        int64_t yrow = ys[ax] * y->dims[ax];
        for (int k = 0; k < n->n_in; k++) {
            const nn_value *v = &m->values[n->in[k]];
            int64_t row = v->dims[ax] * ys[ax];
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)out[0] + (size_t)(o * yrow + off) * es,
                       (const char *)in[k] + (size_t)(o * row) * es, (size_t)row * es);
            off += row;
        }
        return 0;
    }
    case OP_GATHER: {
        const nn_value *idx = &m->values[n->in[1]];
        int ax = (int)(a->axis < 0 ? a->axis + x->ndim : a->axis);
        int64_t outer = 1, inner = xs[ax], ni = nn_numel(idx), dim = x->dims[ax];
        for (int i = 0; i < ax; i++)
            outer *= x->dims[i];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < ni; j++) {
                int64_t k = idx->dtype == DP_I64 ? ((const int64_t *)in[1])[j]
                                                 : ((const int32_t *)in[1])[j];
                if (k < 0) k += dim;
                if (k < 0 || k >= dim)
                    return nn_node_error(n, DP_ERR_INVALID, "index %lld out of range",
                                         (long long)k);
                memcpy((char *)out[0] + (size_t)((o * ni + j) * inner) * es,
                       (const char *)in[0] + (size_t)((o * dim + k) * inner) * es,
                       (size_t)inner * es);
            }
        return 0;
    }
    case OP_SLICE:
    case OP_TRANSPOSE:
    case OP_PAD: {
        /* Gather-by-coordinates: fine for shapes and small tensors; big
         * float transposes go through a oneDNN reorder instead. */
        int64_t perm[DP_MAX_DIMS], pads[2 * DP_MAX_DIMS] = {0};
        if (n->op == OP_TRANSPOSE)
            for (int i = 0; i < y->ndim; i++)
                perm[i] = a->nperm ? a->perm[i] : y->ndim - 1 - i;
        if (n->op == OP_PAD) {
            if (m->opset < 11) {
                memcpy(pads, a->pads_attr, sizeof pads);
            } else {
                const nn_value *pv = &m->values[n->in[1]];
                for (int i = 0; i < 2 * x->ndim; i++)
                    pads[i] = get_i(pv, i);
            }
        }
        double cval = n->op == OP_PAD ? a->pad_value : 0;
        int64_t ccval = 0;
        if (n->op == OP_PAD && m->opset >= 11 && n->n_in > 2 && n->in[2] >= 0) {
            const nn_value *c = &m->values[n->in[2]];
            if (c->dtype == DP_F32)
                cval = *(const float *)c->data;
            else
                ccval = get_i(c, 0);
        } else {
            ccval = (int64_t)cval;
        }
        for (int64_t i = 0; i < total; i++) {
            int64_t rem = i, src = 0;
            bool outside = false;
            for (int d = 0; d < y->ndim; d++) {
                int64_t c = rem / ys[d];
                rem -= c * ys[d];
                if (n->op == OP_SLICE) {
                    src += (a->sl_start[d] + c * a->sl_step[d]) * xs[d];
                } else if (n->op == OP_TRANSPOSE) {
                    src += c * xs[perm[d]];
                } else {
                    int64_t s = c - pads[d], dim = x->dims[d];
                    if (s < 0 || s >= dim) {
                        if (a->pad_mode == 0)
                            outside = true;
                        else if (a->pad_mode == 2)
                            s = s < 0 ? 0 : dim - 1;
                        else {
                            /* reflect without repeating the edge */
                            int64_t period = 2 * (dim - 1);
                            if (period == 0)
                                s = 0;
                            else {
                                s = s % period;
                                if (s < 0) s += period;
                                if (s >= dim) s = period - s;
                            }
                        }
                    }
                    src += s * xs[d];
                }
            }
            if (outside) {
                if (y->dtype == DP_F32)
                    ((float *)out[0])[i] = (float)cval;
                else if (y->dtype == DP_I64)
                    ((int64_t *)out[0])[i] = ccval;
                else if (y->dtype == DP_I32)
                    ((int32_t *)out[0])[i] = (int32_t)ccval;
                else
                    ((uint8_t *)out[0])[i] = ccval != 0;
            } else {
                memcpy((char *)out[0] + (size_t)i * es, (const char *)in[0] + (size_t)src * es, es);
            }
        }
        return 0;
    }
    default:
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "cannot evaluate on the host");
    }
}

/* Runs shape inference over live nodes; evaluates nodes whose inputs are all
 * known. Non-constant known data from a previous call is recomputed. */
int nn_infer(dp_model *m)
{
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node *n = &m->nodes[i];
        if (n->dead) continue;
        for (int o = 0; o < n->n_out; o++) {
            if (n->out[o] < 0) continue;
            nn_value *v = &m->values[n->out[o]];
            if (!v->is_const) {
                DP_FREE(v->data);
                v->known = false;
            }
            v->deferred = false;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node *n = &m->nodes[i];
        if (n->dead) continue;
        bool deferred = false;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && m->values[n->in[k]].deferred) deferred = true;
        if (deferred) {
            for (int o = 0; o < n->n_out; o++)
                if (n->out[o] >= 0) m->values[n->out[o]].deferred = true;
            continue;
        }
        int rc = infer_node(m, n);
        if (rc) return rc;
        /* fused post-ops only exist in the oneDNN path */
        bool all_known = nn_host_capable(m, n) && n->n_post == 0;
        for (int k = 0; k < n->n_in && all_known; k++)
            if (n->in[k] >= 0 && !m->values[n->in[k]].known) all_known = false;
        if (n->op == OP_SHAPE) all_known = true; /* needs only the shape */
        if (!all_known) continue;
        void *ins[16] = {0}, *outs[4] = {0};
        if (n->n_in > 16 || n->n_out > 4) continue;
        bool big = false;
        for (int o = 0; o < n->n_out; o++)
            if (n->out[o] >= 0 && nn_numel(&m->values[n->out[o]]) > NN_MAX_KNOWN_ELEMS) big = true;
        if (big) continue; /* runs as a step instead */
        for (int k = 0; k < n->n_in; k++)
            ins[k] = n->in[k] >= 0 ? m->values[n->in[k]].data : NULL;
        for (int o = 0; o < n->n_out; o++) {
            if (n->out[o] < 0) continue;
            nn_value *v = &m->values[n->out[o]];
            size_t bytes = 0;
            if ((rc = nn_value_bytes(v, &bytes))) return rc;
            v->data = malloc(bytes ? bytes : 1);
            if (!v->data) return dp_set_error(DP_ERR_NOMEM, "out of memory folding constants");
            outs[o] = v->data;
        }
        if ((rc = nn_host_eval(m, n, ins, outs))) return rc;
        for (int o = 0; o < n->n_out; o++)
            if (n->out[o] >= 0) m->values[n->out[o]].known = true;
    }
    return 0;
}
