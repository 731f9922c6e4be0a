/* nn executor rewrites that change where and how tensors are computed but
 * must not change the result: Concat in place (producers write straight into
 * their channel slice of the output at batch 1) and AveragePool run as a
 * depthwise convolution. The oracle is a naive NCHW implementation written
 * here; batch 1 (in place) and batch 2 (copies) must both match it.
 *
 * The graph is an Inception block with the cases the planner must tell apart:
 *   t = relu(conv 1x1 (x)), 16 channels in oneDNN's blocked layout
 *   t[16ch] -> conv 1x1 + relu (a, 16)        slice written in place
 *           -> conv 3x3 pad 1 (b, 32)           slice written in place
 *           -> maxpool 3x3 s1 pad 1 (p, 16)     slice written in place
 *           -> avgpool 3x3 s1 pad 1 exclude-pad -> conv 1x1 + relu (d, 16)
 *           -> conv 1x1 (c, 16), also read by relu (rc): copied, not in place
 *   y = Concat(a, b, p, d, c, x) (x is the plain graph input: copied)
 *   z = relu(conv 1x1 (y) -> 16)
 *   q = Concat(a8, b8) of 8-channel convs of t (not block aligned: plain concat)
 * Outputs z, rc, q and the average pool of t with count_include_pad=1 (ai). */
#include "check.h"
#include "doppel/model.h"
#include "nn_build.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CX = 16, H = 11, W = 9, CY = 16 + 32 + 16 + 16 + 16 + 16, CZ = 16, NMAX = 2 };

static float w0[CX * CX], wa[16 * CX], ba[16], wb[32 * CX * 9], bb[32], wd[16 * CX], bd[16],
    wc[16 * CX], wz[CZ * CY], bz[CZ], w8a[8 * CX], w8b[8 * CX];

/* naive conv, NCHW, stride 1, symmetric pad */
static void conv(const float *x, int n, int ci, int co, int k, int pad, const float *w,
                 const float *bias, bool relu, float *y)
{
    for (int b = 0; b < n; b++)
        for (int o = 0; o < co; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double s = bias ? bias[o] : 0;
                    for (int c = 0; c < ci; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int ii = i + ki - pad, jj = j + kj - pad;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
                                s += (double)w[((o * ci + c) * k + ki) * k + kj] *
                                     x[((b * ci + c) * H + ii) * W + jj];
                            }
                    if (relu && s < 0) s = 0;
                    y[((b * co + o) * H + i) * W + j] = (float)s;
                }
}

/* naive 3x3 stride 1 pad 1 pool: mode 0 max, 1 average excluding the
 * padding, 2 average counting it */
static void pool(const float *x, int n, int ch, int mode, float *y)
{
    for (int b = 0; b < n; b++)
        for (int c = 0; c < ch; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double s = mode ? 0 : -INFINITY;
                    int cnt = 0;
                    for (int ii = i - 1; ii <= i + 1; ii++)
                        for (int jj = j - 1; jj <= j + 1; jj++) {
                            if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
                            double v = x[((b * ch + c) * H + ii) * W + jj];
                            s = mode ? s + v : (v > s ? v : s);
                            cnt++;
                        }
                    y[((b * ch + c) * H + i) * W + j] = (float)(mode == 1   ? s / cnt
                                                                : mode == 2 ? s / 9
                                                                            : s);
                }
}

/* dst[:, off:off+ch] = src */
static void put(float *dst, int n, int ctot, int off, const float *src, int ch)
{
    for (int b = 0; b < n; b++)
        memcpy(dst + ((size_t)b * ctot + off) * H * W, src + (size_t)b * ch * H * W,
               (size_t)ch * H * W * sizeof(float));
}

static float x[NMAX * CX * H * W], rt[NMAX * CX * H * W];
static float ra[NMAX * 16 * H * W], rb[NMAX * 32 * H * W], rp[NMAX * 16 * H * W],
    rav[NMAX * CX * H * W], rd[NMAX * 16 * H * W], rcv[NMAX * 16 * H * W], ry[NMAX * CY * H * W],
    rz[NMAX * CZ * H * W], rq[NMAX * 16 * H * W], rai[NMAX * CX * H * W], t8[NMAX * 8 * H * W];

static void reference(int n)
{
    conv(x, n, CX, CX, 1, 0, w0, NULL, true, rt);
    conv(rt, n, CX, 16, 1, 0, wa, ba, true, ra);
    conv(rt, n, CX, 32, 3, 1, wb, bb, false, rb);
    pool(rt, n, CX, 0, rp);
    pool(rt, n, CX, 1, rav);
    conv(rav, n, CX, 16, 1, 0, wd, bd, true, rd);
    conv(rt, n, CX, 16, 1, 0, wc, NULL, false, rcv);
    put(ry, n, CY, 0, ra, 16);
    put(ry, n, CY, 16, rb, 32);
    put(ry, n, CY, 48, rp, 16);
    put(ry, n, CY, 64, rd, 16);
    put(ry, n, CY, 80, rcv, 16);
    put(ry, n, CY, 96, x, CX);
    conv(ry, n, CY, CZ, 1, 0, wz, bz, true, rz);
    conv(rt, n, CX, 8, 1, 0, w8a, NULL, false, t8);
    put(rq, n, 16, 0, t8, 8);
    conv(rt, n, CX, 8, 1, 0, w8b, NULL, false, t8);
    put(rq, n, 16, 8, t8, 8);
    pool(rt, n, CX, 2, rai);
    for (size_t i = 0; i < (size_t)n * 16 * H * W; i++) /* rc = relu(c) */
        rcv[i] = rcv[i] < 0 ? 0 : rcv[i];
}

static void *build(size_t *size)
{
    nb_model *b = nb_new(13);
    int64_t xd[4] = {-1, CX, H, W};
    nb_input(b, "x", 4, xd);
    int64_t d16[4] = {16, CX, 1, 1}, d32[4] = {32, CX, 3, 3}, dz[4] = {CZ, CY, 1, 1},
            d8[4] = {8, CX, 1, 1}, b16[1] = {16}, b32[1] = {32}, bzd[1] = {CZ};
    int64_t pads[4] = {1, 1, 1, 1}, k3[2] = {3, 3};
    int64_t d0[4] = {CX, CX, 1, 1};
    nb_init(b, "w0", 4, d0, w0);
    nb_init(b, "wa", 4, d16, wa);
    nb_init(b, "ba", 1, b16, ba);
    nb_init(b, "wb", 4, d32, wb);
    nb_init(b, "bb", 1, b32, bb);
    nb_init(b, "wd", 4, d16, wd);
    nb_init(b, "bd", 1, b16, bd);
    nb_init(b, "wc", 4, d16, wc);
    nb_init(b, "wz", 4, dz, wz);
    nb_init(b, "bz", 1, bzd, bz);
    nb_init(b, "w8a", 4, d8, w8a);
    nb_init(b, "w8b", 4, d8, w8b);
    nb_node(b, "Conv", "conv_0", "x,w0", "c0");
    nb_node(b, "Relu", "relu_0", "c0", "t");
    nb_node(b, "Conv", "conv_a", "t,wa,ba", "ca");
    nb_node(b, "Relu", "relu_a", "ca", "a");
    Onnx__NodeProto *n = nb_node(b, "Conv", "conv_b", "t,wb,bb", "b");
    nb_attr_ints(n, "pads", 4, pads);
    n = nb_node(b, "MaxPool", "maxpool", "t", "p");
    nb_attr_ints(n, "kernel_shape", 2, k3);
    nb_attr_ints(n, "pads", 4, pads);
    n = nb_node(b, "AveragePool", "avgpool", "t", "av");
    nb_attr_ints(n, "kernel_shape", 2, k3);
    nb_attr_ints(n, "pads", 4, pads);
    nb_node(b, "Conv", "conv_d", "av,wd,bd", "cd");
    nb_node(b, "Relu", "relu_d", "cd", "d");
    nb_node(b, "Conv", "conv_c", "t,wc", "c");
    nb_node(b, "Relu", "relu_c", "c", "rc");
    n = nb_node(b, "Concat", "concat", "a,b,p,d,c,x", "y");
    nb_attr_int(n, "axis", 1);
    nb_node(b, "Conv", "conv_z", "y,wz,bz", "cz");
    nb_node(b, "Relu", "relu_z", "cz", "z");
    nb_node(b, "Conv", "conv_8a", "t,w8a", "a8");
    nb_node(b, "Conv", "conv_8b", "t,w8b", "b8");
    n = nb_node(b, "Concat", "concat8", "a8,b8", "q");
    nb_attr_int(n, "axis", -3);
    n = nb_node(b, "AveragePool", "avgpool_incl", "t", "ai");
    nb_attr_ints(n, "kernel_shape", 2, k3);
    nb_attr_ints(n, "pads", 4, pads);
    nb_attr_int(n, "count_include_pad", 1);
    nb_output(b, "z");
    nb_output(b, "rc");
    nb_output(b, "q");
    nb_output(b, "ai");
    return nb_pack(b, size);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    return worst;
}

static void check_output(dp_model *m, const char *name, const float *want, size_t cnt, int n)
{
    dp_tensor t;
    int rc = dp_model_output(m, name, &t);
    CHECK(rc == 0, "output %s: %s", name, dp_last_error());
    if (rc) return;
    size_t got = 1;
    for (int i = 0; i < t.ndim; i++)
        got *= (size_t)t.dims[i];
    CHECK(got == cnt, "%s: %zu values, want %zu", name, got, cnt);
    if (got != cnt) return;
    double d = max_abs_diff(t.data, want, cnt);
    CHECK(d < 1e-4, "%s at batch %d differs from the naive reference by %g", name, n, d);
}

static void run_and_check(dp_model *m, int n, const char *what)
{
    reference(n);
    dp_tensor in = {.dtype = DP_F32, .ndim = 4, .dims = {n, CX, H, W}, .data = x};
    int rc = dp_model_run(m, &in, 1);
    CHECK(rc == 0, "%s run at batch %d: %s", what, n, dp_last_error());
    if (rc) return;
    check_output(m, "z", rz, (size_t)n * CZ * H * W, n);
    check_output(m, "rc", rcv, (size_t)n * 16 * H * W, n);
    check_output(m, "q", rq, (size_t)n * 16 * H * W, n);
    check_output(m, "ai", rai, (size_t)n * CX * H * W, n);
}

int main(void)
{
    nb_fill(x, sizeof x / 4, 1);
    nb_fill(w0, sizeof w0 / 4, 13);
    nb_fill(wa, sizeof wa / 4, 2);
    nb_fill(ba, 16, 3);
    nb_fill(wb, sizeof wb / 4, 4);
    nb_fill(bb, 32, 5);
    nb_fill(wd, sizeof wd / 4, 6);
    nb_fill(bd, 16, 7);
    nb_fill(wc, sizeof wc / 4, 8);
    nb_fill(wz, sizeof wz / 4, 9);
    nb_fill(bz, CZ, 10);
    nb_fill(w8a, sizeof w8a / 4, 11);
    nb_fill(w8b, sizeof w8b / 4, 12);
    size_t size;
    void *buf = build(&size);
    for (int nf = 0; nf < 2; nf++) {
        dp_model_params p = dp_model_default_params();
        p.threads = 1;
        p.no_fusion = nf;
        dp_model *m = NULL;
        int rc = dp_model_open_memory(buf, size, &p, &m);
        CHECK(rc == 0, "open: %s", dp_last_error());
        if (rc) continue;
        const char *what = nf ? "unfused" : "fused";
        run_and_check(m, 1, what);
        run_and_check(m, 2, what);
        run_and_check(m, 1, what); /* cached batch-1 plan again */
        dp_model_free(m);
    }
    free(buf);
    if (failures) {
        fprintf(stderr, "test_nn_inplace: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_nn_inplace: ok\n");
    return 0;
}
