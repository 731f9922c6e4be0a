/* nn graph passes: BatchNorm folding, activation/Add fusion, pruning to an
 * intermediate tensor, memory reuse and batch changes must not change what
 * the graph computes. The oracles are a naive convolution written here and
 * the same graph run with no_fusion (every node its own primitive). */
#include "check.h"
#include "doppel/model.h"
#include "nn_build.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C0 = 4, C1 = 8, H = 9, W = 7, NCLS = 3 };

static float w1[C1 * C0 * 9], b1[C1], w2[C1 * C1 * 9], w3[C1 * 9], wf[NCLS * C1], bf[NCLS];
static float bn_g[2][C1], bn_b[2][C1], bn_m[2][C1], bn_v[2][C1];

static void add_bn(nb_model *b, int k, const char *name, const char *in, const char *out)
{
    char g[32], bb[32], m[32], v[32], ins[160];
    int64_t d[1] = {C1};
    snprintf(g, sizeof g, "%s_g", name);
    snprintf(bb, sizeof bb, "%s_b", name);
    snprintf(m, sizeof m, "%s_m", name);
    snprintf(v, sizeof v, "%s_v", name);
    nb_init(b, g, 1, d, bn_g[k]);
    nb_init(b, bb, 1, d, bn_b[k]);
    nb_init(b, m, 1, d, bn_m[k]);
    nb_init(b, v, 1, d, bn_v[k]);
    snprintf(ins, sizeof ins, "%s,%s,%s,%s,%s", in, g, bb, m, v);
    Onnx__NodeProto *n = nb_node(b, "BatchNormalization", name, ins, out);
    nb_attr_float(n, "epsilon", 1e-3f);
}

/* x -> conv1 -> bn1 -> relu (r1) -> conv2 -> bn2 -> +r1 -> relu -> dwconv ->
 * clip(0,6) -> hardsigmoid -> gap -> flatten -> gemm (y) */
static void *build_net(size_t *size)
{
    nb_model *b = nb_new(13);
    int64_t xd[4] = {-1, C0, H, W};
    nb_input(b, "x", 4, xd);
    int64_t d1[4] = {C1, C0, 3, 3}, db[1] = {C1}, d2[4] = {C1, C1, 3, 3}, d3[4] = {C1, 1, 3, 3};
    int64_t df[2] = {NCLS, C1}, dbf[1] = {NCLS}, pads[4] = {1, 1, 1, 1};
    nb_init(b, "w1", 4, d1, w1);
    nb_init(b, "b1", 1, db, b1);
    nb_init(b, "w2", 4, d2, w2);
    nb_init(b, "w3", 4, d3, w3);
    nb_init(b, "wf", 2, df, wf);
    nb_init(b, "bf", 1, dbf, bf);
    float lo = 0, hi = 6;
    nb_init(b, "lo", 0, NULL, &lo);
    nb_init(b, "hi", 0, NULL, &hi);
    Onnx__NodeProto *n = nb_node(b, "Conv", "conv1", "x,w1,b1", "c1");
    nb_attr_ints(n, "pads", 4, pads);
    add_bn(b, 0, "bn1", "c1", "n1");
    nb_node(b, "Relu", "relu1", "n1", "r1");
    n = nb_node(b, "Conv", "conv2", "r1,w2", "c2");
    nb_attr_ints(n, "pads", 4, pads);
    add_bn(b, 1, "bn2", "c2", "n2");
    nb_node(b, "Add", "add", "n2,r1", "a");
    nb_node(b, "Relu", "relu2", "a", "r2");
    n = nb_node(b, "Conv", "conv3", "r2,w3", "c3");
    nb_attr_ints(n, "pads", 4, pads);
    nb_attr_int(n, "group", C1);
    nb_node(b, "Clip", "clip", "c3,lo,hi", "k");
    n = nb_node(b, "HardSigmoid", "hsig", "k", "h");
    nb_attr_float(n, "alpha", 0.3f);
    nb_attr_float(n, "beta", 0.4f);
    nb_node(b, "GlobalAveragePool", "gap", "h", "gp");
    nb_node(b, "Flatten", "flat", "gp", "f");
    n = nb_node(b, "Gemm", "fc", "f,wf,bf", "y");
    nb_attr_int(n, "transB", 1);
    nb_output(b, "y");
    return nb_pack(b, size);
}

static void init_weights(void)
{
    nb_fill(w1, sizeof w1 / 4, 1);
    nb_fill(b1, C1, 2);
    nb_fill(w2, sizeof w2 / 4, 3);
    nb_fill(w3, sizeof w3 / 4, 4);
    nb_fill(wf, sizeof wf / 4, 5);
    nb_fill(bf, NCLS, 6);
    for (int k = 0; k < 2; k++) {
        nb_fill(bn_g[k], C1, 10 + k);
        nb_fill(bn_b[k], C1, 20 + k);
        nb_fill(bn_m[k], C1, 30 + k);
        nb_fill(bn_v[k], C1, 40 + k);
        for (int c = 0; c < C1; c++)
            bn_v[k][c] = bn_v[k][c] + 1.5f; /* positive */
    }
}

/* naive conv3x3 pad 1 + bias + BatchNorm, the oracle for bn1's output */
static void ref_conv_bn(const float *x, int n_batch, float *out)
{
    for (int nb = 0; nb < n_batch; nb++)
        for (int o = 0; o < C1; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double s = b1[o];
                    for (int c = 0; c < C0; c++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int ii = i + ki - 1, jj = j + kj - 1;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
                                s += (double)w1[((o * C0 + c) * 3 + ki) * 3 + kj] *
                                     x[((nb * C0 + c) * H + ii) * W + jj];
                            }
                    s = (s - bn_m[0][o]) / sqrt(bn_v[0][o] + 1e-3) * bn_g[0][o] + bn_b[0][o];
                    out[((nb * C1 + o) * H + i) * W + j] = (float)s;
                }
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1e-3 + fabs((double)b[i]));
        if (d > worst || isnan(d)) worst = isnan(d) ? 1e9 : d;
    }
    return worst;
}

static dp_model *open_net(const void *buf, size_t size, int no_fusion, const char **outs, int nout)
{
    dp_model_params p = dp_model_default_params();
    p.no_fusion = no_fusion;
    p.outputs = outs;
    p.n_outputs = (size_t)nout;
    p.threads = 1;
    dp_model *m = NULL;
    int rc = dp_model_open_memory(buf, size, &p, &m);
    CHECK(rc == 0, "open: %s", dp_last_error());
    return m;
}

/* Runs m on x (batch n) and copies output `name`; returns its element count. */
static size_t run_copy(dp_model *m, const float *x, int n, const char *name, float *dst)
{
    dp_tensor in = {"x", DP_F32, 4, {n, C0, H, W}, (void *)x};
    int rc = dp_model_run(m, &in, 1);
    CHECK(rc == 0, "run: %s", dp_last_error());
    if (rc) return 0;
    dp_tensor out;
    rc = dp_model_output(m, name, &out);
    CHECK(rc == 0, "output %s: %s", name ? name : "(first)", dp_last_error());
    if (rc) return 0;
    size_t cnt = 1;
    for (int i = 0; i < out.ndim; i++)
        cnt *= (size_t)out.dims[i];
    memcpy(dst, out.data, cnt * sizeof(float));
    return cnt;
}

static float xbuf[3 * C0 * H * W];

static void test_fused_equals_unfused(const void *buf, size_t size)
{
    dp_model *f = open_net(buf, size, 0, NULL, 0), *u = open_net(buf, size, 1, NULL, 0);
    if (!f || !u) return;
    dp_model_info fi, ui;
    dp_model_describe(f, &fi);
    dp_model_describe(u, &ui);
    /* bn1, relu1, bn2, add, relu2, clip folded or fused away (hsig stays:
     * at most two chained eltwise post-ops) */
    CHECK(fi.n_nodes + 6 == ui.n_nodes, "fused %zu nodes, unfused %zu", fi.n_nodes, ui.n_nodes);
    CHECK(fi.n_nodes_in_file == 13, "file has %zu nodes", fi.n_nodes_in_file);
    CHECK(fi.n_params > 0 && fi.flops > 0, "params %lld flops %g", (long long)fi.n_params,
          fi.flops);
    float yf[3 * NCLS], yu[3 * NCLS];
    size_t n1 = run_copy(f, xbuf, 3, "y", yf), n2 = run_copy(u, xbuf, 3, "y", yu);
    CHECK(n1 == 3 * NCLS && n2 == n1, "sizes %zu %zu", n1, n2);
    double d = max_rel_diff(yf, yu, n1);
    CHECK(d < 1e-3, "fused vs unfused differ by %g", d);
    dp_model_free(f);
    dp_model_free(u);
}

static void test_bn_fold_matches_reference(const void *buf, size_t size)
{
    /* n1 is swallowed by the conv in the full graph; asking for it keeps it */
    const char *outs[] = {"n1"};
    dp_model *m = open_net(buf, size, 0, outs, 1);
    if (!m) return;
    dp_model_info info;
    dp_model_describe(m, &info);
    CHECK(info.n_nodes == 1, "pruned+folded graph has %zu nodes", info.n_nodes);
    static float got[3 * C1 * H * W], want[3 * C1 * H * W];
    size_t n = run_copy(m, xbuf, 3, "n1", got);
    ref_conv_bn(xbuf, 3, want);
    CHECK(n == sizeof want / 4, "size %zu", n);
    double d = max_rel_diff(got, want, n);
    CHECK(d < 1e-3, "folded conv+bn differs from the naive reference by %g", d);
    dp_model_free(m);
}

static void test_prune_intermediate(const void *buf, size_t size)
{
    const char *outs[] = {"r1"};
    dp_model *f = open_net(buf, size, 0, outs, 1), *u = open_net(buf, size, 1, outs, 1);
    if (!f || !u) return;
    static float a[3 * C1 * H * W], b[3 * C1 * H * W];
    size_t n1 = run_copy(f, xbuf, 3, "r1", a), n2 = run_copy(u, xbuf, 3, "r1", b);
    CHECK(n1 == n2 && n1 == 3 * C1 * H * W, "sizes %zu %zu", n1, n2);
    CHECK(max_rel_diff(a, b, n1) < 1e-4, "pruned outputs differ");
    bool relu = true;
    for (size_t i = 0; i < n1; i++)
        relu = relu && a[i] >= 0;
    CHECK(relu, "r1 has negative values: the relu was lost");
    dp_tensor t;
    CHECK(dp_model_output(f, "y", &t) == DP_ERR_NOT_FOUND, "y should not be readable");
    dp_model_free(f);
    dp_model_free(u);
}

/* Several requested outputs stay intact while buffers are reused around
 * them: each equals the value from a model that asked for it alone. */
static void test_memory_reuse(const void *buf, size_t size)
{
    const char *all[] = {"r1", "c3", "y"};
    dp_model *m = open_net(buf, size, 0, all, 3);
    if (!m) return;
    static float got[3][3 * C1 * H * W], alone[3 * C1 * H * W];
    size_t cnt[3];
    dp_tensor in = {"x", DP_F32, 4, {3, C0, H, W}, xbuf};
    CHECK(dp_model_run(m, &in, 1) == 0, "run: %s", dp_last_error());
    for (int k = 0; k < 3; k++) {
        dp_tensor t;
        CHECK(dp_model_output(m, all[k], &t) == 0, "output %s", all[k]);
        cnt[k] = 1;
        for (int i = 0; i < t.ndim; i++)
            cnt[k] *= (size_t)t.dims[i];
        memcpy(got[k], t.data, cnt[k] * 4);
    }
    for (int k = 0; k < 3; k++) {
        const char *one[] = {all[k]};
        dp_model *s = open_net(buf, size, 1, one, 1);
        if (!s) continue;
        size_t n = run_copy(s, xbuf, 3, all[k], alone);
        CHECK(n == cnt[k], "%s size %zu vs %zu", all[k], n, cnt[k]);
        double d = max_rel_diff(got[k], alone, n);
        CHECK(d < 1e-3, "%s differs by %g when read next to other outputs", all[k], d);
        dp_model_free(s);
    }
    dp_model_free(m);
}

static void test_batch_change(const void *buf, size_t size)
{
    dp_model *m = open_net(buf, size, 0, NULL, 0);
    if (!m) return;
    float y3[3 * NCLS], y1[NCLS], again[3 * NCLS];
    run_copy(m, xbuf, 3, NULL, y3);
    for (int s = 0; s < 3; s++) {
        run_copy(m, xbuf + s * C0 * H * W, 1, NULL, y1);
        double d = max_rel_diff(y1, y3 + s * NCLS, NCLS);
        CHECK(d < 1e-4, "sample %d alone differs from its batch-3 result by %g", s, d);
    }
    run_copy(m, xbuf, 3, NULL, again);
    CHECK(max_rel_diff(again, y3, 3 * NCLS) < 1e-6, "cached batch-3 plan gives other results");
    /* wrong shapes are refused with a message */
    dp_tensor bad = {"x", DP_F32, 4, {1, C0 + 1, H, W}, xbuf};
    CHECK(dp_model_run(m, &bad, 1) == DP_ERR_INVALID, "wrong channel count accepted");
    CHECK(strstr(dp_last_error(), "dim 1") != NULL, "message: %s", dp_last_error());
    dp_model_free(m);
}

static void expect_open_error(nb_model *b, int status, const char *needle)
{
    size_t size;
    void *buf = nb_pack(b, &size);
    dp_model *m = NULL;
    int rc = dp_model_open_memory(buf, size, NULL, &m);
    CHECK(rc == status, "status %d, want %d (%s)", rc, status, dp_last_error());
    CHECK(strstr(dp_last_error(), needle) != NULL, "message '%s' lacks '%s'", dp_last_error(),
          needle);
    CHECK(m == NULL, "model returned on error");
    dp_model_free(m);
    free(buf);
}

static void test_errors(void)
{
    int64_t xd[2] = {1, 4};
    nb_model *b = nb_new(13);
    nb_input(b, "x", 2, xd);
    nb_node(b, "Celu", "my_celu", "x", "y");
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_UNSUPPORTED, "node 'my_celu' (op Celu): unsupported op");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    Onnx__NodeProto *n = nb_node(b, "Relu", "r", "x", "y");
    nb_attr_int(n, "bogus", 1);
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_UNSUPPORTED, "node 'r' (op Relu): unsupported attribute 'bogus'");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    nb_node(b, "Add", "a1", "x,q", "p");
    nb_node(b, "Relu", "a2", "p", "q");
    nb_output(b, "q");
    expect_open_error(b, DP_ERR_FORMAT, "cycle");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    nb_node(b, "Add", "adder", "x,nowhere", "y");
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_FORMAT, "node 'adder' (op Add): input 'nowhere' is not produced");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    float v[4] = {0};
    int64_t wd[2] = {4, 1};
    Onnx__TensorProto *t = nb_init(b, "w", 2, wd, v);
    t->dims[1] = -1;
    nb_node(b, "MatMul", "mm", "x,w", "y");
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_FORMAT, "negative dim");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    t = nb_init(b, "w", 2, wd, v);
    t->n_float_data = 3; /* dims say 4 */
    nb_node(b, "MatMul", "mm", "x,w", "y");
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_FORMAT, "has 3 values, dims say 4");

    b = nb_new(13);
    nb_input(b, "x", 2, xd);
    nb_node(b, "MatMul", "mm", "x,x", "y"); /* 1x4 @ 1x4 */
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_FORMAT, "node 'mm' (op MatMul): inner dims differ");

    b = nb_new(13);
    int64_t huge[4] = {1, 1 << 20, 1 << 20, 1 << 20};
    nb_input(b, "x", 4, huge);
    nb_node(b, "Relu", "r", "x", "y");
    nb_output(b, "y");
    expect_open_error(b, DP_ERR_FORMAT, "huge");

    /* truncated and garbage files */
    size_t size;
    void *buf = build_net(&size);
    dp_model *m = NULL;
    for (size_t cut = 1; cut < size; cut += size / 37 + 1) {
        int rc = dp_model_open_memory(buf, cut, NULL, &m);
        CHECK(rc != 0 && m == NULL, "truncated model (%zu of %zu bytes) opened", cut, size);
        dp_model_free(m);
        m = NULL;
    }
    CHECK(dp_model_open("/nonexistent/model.onnx", NULL, &m) == DP_ERR_IO, "missing file");
    CHECK(strstr(dp_last_error(), "/nonexistent/model.onnx") != NULL, "%s", dp_last_error());
    free(buf);
}

int main(void)
{
    init_weights();
    nb_fill(xbuf, sizeof xbuf / 4, 99);
    size_t size;
    void *buf = build_net(&size);
    test_fused_equals_unfused(buf, size);
    test_bn_fold_matches_reference(buf, size);
    test_prune_intermediate(buf, size);
    test_memory_reuse(buf, size);
    test_batch_change(buf, size);
    test_errors();
    free(buf);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_nn_passes: ok\n");
    return 0;
}
