/* Public dp_model_* API over the loader, passes and executor. */
#include "nn.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define NN_MAX_INPUT_ELEMS ((int64_t)1 << 32)

dp_model_params dp_model_default_params(void)
{
    dp_model_params p;
    memset(&p, 0, sizeof p);
    return p;
}

void dp_model_free(dp_model *m)
{
    if (!m) return;
    nn_plans_free(m);
    for (int i = 0; i < m->n_values; i++) {
        free(m->values[i].name);
        free(m->values[i].data);
    }
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
        free(m->nodes[i].op_type);
        free(m->nodes[i].in);
        free(m->nodes[i].out);
    }
    free(m->values);
    free(m->nodes);
    free(m->inputs);
    free(m->outputs);
    free(m->producer);
    if (m->stream) dnnl_stream_destroy(m->stream);
    if (m->engine) dnnl_engine_destroy(m->engine);
    free(m);
}

/* Shapes at batch 1 (dynamic dims as 1) for checking and describe(). */
static void set_default_input_dims(dp_model *m)
{
    for (int k = 0; k < m->n_inputs; k++) {
        nn_value *v = &m->values[m->inputs[k]];
        if (v->param) {
            v->deferred = true;
            v->known = false;
            DP_FREE(v->data);
        }
        v->ndim = v->decl_ndim;
        for (int i = 0; i < v->ndim; i++)
            v->dims[i] = v->decl_dims[i] < 0 ? 1 : v->decl_dims[i];
    }
}

static int open_common(const void *data, size_t size, const dp_model_params *params, dp_model **out)
{
    dp_model_params def = dp_model_default_params();
    if (!params) params = &def;
    dp_model *m = calloc(1, sizeof *m);
    int rc;
    if (!m) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    m->threads = params->threads;
    m->no_fusion = params->no_fusion != 0;
    if ((rc = nn_load_onnx(m, data, size, params))) goto fail;
    /* selected outputs */
    if (params->outputs && params->n_outputs) {
        int *o = calloc(params->n_outputs, sizeof *o);
        if (!o) {
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto fail;
        }
        free(m->outputs);
        m->outputs = o;
        m->n_outputs = 0;
        for (size_t i = 0; i < params->n_outputs; i++) {
            const char *nm = params->outputs[i];
            int id = nm ? nn_find_value(m, nm) : -1;
            if (id < 0) {
                rc = dp_set_error(DP_ERR_NOT_FOUND, "no tensor named '%s' in the model",
                                  nm ? nm : "(null)");
                goto fail;
            }
            m->outputs[m->n_outputs++] = id;
        }
    }
    for (int k = 0; k < m->n_outputs; k++)
        m->values[m->outputs[k]].keep = true;
    for (int k = 0; k < m->n_inputs; k++) {
        nn_value *v = &m->values[m->inputs[k]];
        int64_t cnt = 1;
        for (int i = 0; i < v->decl_ndim; i++) {
            int64_t d = v->decl_dims[i] < 0 ? 1 : v->decl_dims[i];
            if (d > 0 && cnt > NN_MAX_INPUT_ELEMS / d) {
                rc = dp_set_error(DP_ERR_FORMAT, "graph input '%s' declares a huge shape", v->name);
                goto fail;
            }
            cnt *= d;
        }
        bool fixed = true;
        for (int i = 0; i < v->decl_ndim; i++)
            fixed = fixed && v->decl_dims[i] >= 0;
        v->param = v->dtype != DP_F32 || (fixed && cnt <= 1);
    }
    set_default_input_dims(m);
    if ((rc = nn_infer(m))) goto fail;
    if ((rc = nn_passes(m))) goto fail;
    set_default_input_dims(m);
    if ((rc = nn_infer(m))) goto fail;
    /* FLOPs at batch 1 */
    m->flops = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node *n = &m->nodes[i];
        if (n->dead || n->n_out < 1 || n->out[0] < 0) continue;
        const nn_value *y = &m->values[n->out[0]];
        if (y->deferred) continue; /* shape known only at run time */
        if (n->op == OP_CONV || n->op == OP_CONVT) {
            const nn_value *w = &m->values[n->in[1]];
            double k = 1;
            for (int d = 1; d < w->ndim; d++)
                k *= (double)w->dims[d];
            const nn_value *x = &m->values[n->in[0]];
            double macs = n->op == OP_CONV ? (double)nn_numel(y) * k : (double)nn_numel(x) * k;
            m->flops += 2 * macs;
        } else if (n->op == OP_GEMM || n->op == OP_MATMUL) {
            const nn_value *a = &m->values[n->in[0]];
            int64_t K = n->op == OP_GEMM && n->a.trans_a ? a->dims[0] : a->dims[a->ndim - 1];
            m->flops += 2.0 * (double)nn_numel(y) * (double)K;
        }
    }
    if (m->n_inputs > 0 && m->values[m->inputs[0]].decl_ndim > 0 &&
        m->values[m->inputs[0]].decl_dims[0] > 1)
        m->flops /= (double)m->values[m->inputs[0]].decl_dims[0];
    if (dnnl_engine_create(&m->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&m->stream, m->engine, dnnl_stream_default_flags) != dnnl_success) {
        rc = dp_set_error(DP_ERR_BACKEND, "oneDNN: cannot create the CPU engine");
        goto fail;
    }
    *out = m;
    return 0;
fail:
    dp_model_free(m);
    return rc;
}

int dp_model_open_memory(const void *data, size_t size, const dp_model_params *params,
                         dp_model **out)
{
    if (!out || (!data && size)) return dp_set_error(DP_ERR_INVALID, "dp_model_open_memory: NULL");
    *out = NULL;
    dp_clear_error();
    size_t cap = params && params->max_file_bytes ? params->max_file_bytes : ((size_t)2 << 30);
    if (size > cap)
        return dp_set_error(DP_ERR_NOMEM, "model is %zu bytes, above the limit of %zu", size, cap);
    int rc = open_common(data, size, params, out);
    if (rc) return dp_prefix_error(rc, "dp_model_open_memory");
    return 0;
}

int dp_model_open(const char *path, const dp_model_params *params, dp_model **out)
{
    if (!path || !out) return dp_set_error(DP_ERR_INVALID, "dp_model_open: NULL argument");
    *out = NULL;
    dp_clear_error();
    size_t cap = params && params->max_file_bytes ? params->max_file_bytes : ((size_t)2 << 30);
    void *data;
    size_t size;
    int rc = dp_read_file(path, cap, &data, &size);
    if (rc) return dp_prefix_error(rc, "dp_model_open");
    rc = open_common(data, size, params, out);
    free(data);
    if (rc) return dp_prefix_error(rc, "dp_model_open: %s", path);
    return 0;
}

int dp_model_describe(const dp_model *m, dp_model_info *info)
{
    if (!m || !info) return dp_set_error(DP_ERR_INVALID, "dp_model_describe: NULL argument");
    memset(info, 0, sizeof *info);
    info->producer = m->producer;
    info->opset = m->opset;
    for (int i = 0; i < m->n_nodes; i++)
        if (!m->nodes[i].dead) info->n_nodes++;
    info->n_nodes_in_file = m->n_nodes_in_file;
    info->n_params = m->n_params;
    info->flops = m->flops;
    info->n_inputs = (size_t)m->n_inputs;
    info->n_outputs = (size_t)m->n_outputs;
    return 0;
}

int dp_model_input(const dp_model *m, size_t i, dp_tensor *out)
{
    if (!m || !out) return dp_set_error(DP_ERR_INVALID, "dp_model_input: NULL argument");
    if (i >= (size_t)m->n_inputs)
        return dp_set_error(DP_ERR_NOT_FOUND, "dp_model_input: no input %zu", i);
    const nn_value *v = &m->values[m->inputs[i]];
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->dtype = v->dtype;
    out->ndim = v->decl_ndim;
    memcpy(out->dims, v->decl_dims, sizeof out->dims);
    return 0;
}

int dp_model_output_info(const dp_model *m, size_t i, dp_tensor *out)
{
    if (!m || !out) return dp_set_error(DP_ERR_INVALID, "dp_model_output_info: NULL argument");
    if (i >= (size_t)m->n_outputs)
        return dp_set_error(DP_ERR_NOT_FOUND, "dp_model_output_info: no output %zu", i);
    const nn_value *v = &m->values[m->outputs[i]];
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->dtype = v->dtype;
    if (v->has_decl && !v->is_input) {
        out->ndim = v->decl_ndim;
        memcpy(out->dims, v->decl_dims, sizeof out->dims);
    } else {
        out->ndim = v->ndim;
        memcpy(out->dims, v->dims, sizeof out->dims);
    }
    /* last inferred shape; a dynamic batch stays dynamic */
    if (!v->has_decl && m->n_inputs > 0 && out->ndim > 0) {
        const nn_value *in = &m->values[m->inputs[0]];
        if (in->decl_ndim > 0 && in->decl_dims[0] < 0) out->dims[0] = -1;
    }
    return 0;
}

int dp_model_op(const dp_model *m, size_t i, const char **op_type, size_t *count)
{
    if (!m) return dp_set_error(DP_ERR_INVALID, "dp_model_op: NULL model");
    if (i >= (size_t)m->n_hist) return DP_ERR_NOT_FOUND;
    if (op_type) *op_type = m->hist_name[i];
    if (count) *count = m->hist_count[i];
    return 0;
}

int nn_plan_bind_input(dp_model *m, int k, const void *data);

int dp_model_run(dp_model *m, const dp_tensor *inputs, size_t n_inputs)
{
    if (!m || (!inputs && n_inputs))
        return dp_set_error(DP_ERR_INVALID, "dp_model_run: NULL argument");
    dp_clear_error();
    if (n_inputs != (size_t)m->n_inputs)
        return dp_set_error(DP_ERR_INVALID, "dp_model_run: model has %d inputs, got %zu",
                            m->n_inputs, n_inputs);
    const void *data[64];
    if (n_inputs > 64) return dp_set_error(DP_ERR_UNSUPPORTED, "dp_model_run: too many inputs");
    bool changed = m->cur == NULL;
    for (size_t j = 0; j < n_inputs; j++) {
        const dp_tensor *t = &inputs[j];
        int k = (int)j;
        if (t->name) {
            k = -1;
            for (int q = 0; q < m->n_inputs; q++)
                if (!strcmp(m->values[m->inputs[q]].name, t->name)) k = q;
            if (k < 0)
                return dp_set_error(DP_ERR_NOT_FOUND, "dp_model_run: no input named '%s'", t->name);
        }
        nn_value *v = &m->values[m->inputs[k]];
        if (t->dtype != v->dtype)
            return dp_set_error(DP_ERR_INVALID,
                                "dp_model_run: input '%s' has dtype %d, model "
                                "wants %d",
                                v->name, t->dtype, v->dtype);
        if (t->ndim != v->decl_ndim)
            return dp_set_error(DP_ERR_INVALID,
                                "dp_model_run: input '%s' has rank %d, model "
                                "wants %d",
                                v->name, t->ndim, v->decl_ndim);
        int64_t cnt = 1;
        for (int i = 0; i < t->ndim; i++) {
            if (t->dims[i] < 0 || (v->decl_dims[i] >= 0 && t->dims[i] != v->decl_dims[i]))
                return dp_set_error(DP_ERR_INVALID,
                                    "dp_model_run: input '%s' dim %d is %lld, "
                                    "model wants %lld",
                                    v->name, i, (long long)t->dims[i], (long long)v->decl_dims[i]);
            if (t->dims[i] > 0 && cnt > NN_MAX_INPUT_ELEMS / t->dims[i])
                return dp_set_error(DP_ERR_INVALID, "dp_model_run: input '%s' is too large",
                                    v->name);
            cnt *= t->dims[i];
        }
        if (!t->data && cnt)
            return dp_set_error(DP_ERR_INVALID, "dp_model_run: input '%s' has no data", v->name);
        if (memcmp(v->dims, t->dims, (size_t)t->ndim * sizeof *t->dims) || v->ndim != t->ndim)
            changed = true;
        if (v->param) {
            size_t bytes = (size_t)cnt * nn_dtype_size(v->dtype);
            if (cnt > 4096)
                return dp_set_error(DP_ERR_UNSUPPORTED,
                                    "dp_model_run: input '%s' is used as a "
                                    "shape/parameter and has %lld values (at most 4096)",
                                    v->name, (long long)cnt);
            if (!v->known || v->ndim != t->ndim || memcmp(v->dims, t->dims, (size_t)t->ndim * 8) ||
                memcmp(v->data, t->data, bytes)) {
                void *copy = malloc(bytes ? bytes : 1);
                if (!copy) return dp_set_error(DP_ERR_NOMEM, "out of memory");
                memcpy(copy, t->data, bytes);
                free(v->data);
                v->data = copy;
                v->known = true;
                v->deferred = false;
                changed = true;
            }
        }
        v->ndim = t->ndim;
        memcpy(v->dims, t->dims, (size_t)t->ndim * sizeof *t->dims);
        data[k] = t->data;
    }
    int rc;
    /* before planning too: oneDNN sizes its work split by the thread count
     * at primitive creation */
    if (m->threads > 0) omp_set_num_threads(m->threads);
    if (changed) {
        m->cur = NULL;
        if ((rc = nn_infer(m))) return dp_prefix_error(rc, "dp_model_run");
        if ((rc = nn_plan_get(m))) return dp_prefix_error(rc, "dp_model_run");
    }
    for (int k = 0; k < m->n_inputs; k++)
        nn_plan_bind_input(m, k, data[k]);
    if ((rc = nn_plan_run(m))) return dp_prefix_error(rc, "dp_model_run");
    return 0;
}

int dp_model_output(const dp_model *m, const char *name, dp_tensor *out)
{
    if (!m || !out) return dp_set_error(DP_ERR_INVALID, "dp_model_output: NULL argument");
    if (!m->cur) return dp_set_error(DP_ERR_INVALID, "dp_model_output: the model has not run");
    int vid = -1;
    for (int k = 0; k < m->n_outputs; k++)
        if (!name || !strcmp(m->values[m->outputs[k]].name, name)) {
            vid = m->outputs[k];
            break;
        }
    if (vid < 0)
        return dp_set_error(DP_ERR_NOT_FOUND,
                            "dp_model_output: '%s' is not a selected output "
                            "(pass it in dp_model_params.outputs)",
                            name);
    const nn_value *v = &m->values[vid];
    memset(out, 0, sizeof *out);
    out->name = v->name;
    out->dtype = v->dtype;
    out->ndim = v->ndim;
    memcpy(out->dims, v->dims, sizeof out->dims);
    out->data = (void *)nn_plan_output(m, vid);
    if (!out->data && nn_numel(v) > 0)
        return dp_set_error(DP_ERR_NOT_FOUND, "dp_model_output: '%s' was not computed", name);
    return 0;
}
