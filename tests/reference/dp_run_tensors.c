/* dp_run_tensors: doppel's side of the reference check (tests/reference/run.sh).
 *
 *   dp_run_tensors preprocess --size WxH [--scale S] OUT.npy IMAGE...
 *       decode and preprocess each image with doppel's image module
 *       (dp_image_load_tensor: squash resize, RGB, x*S, mean 0, std 1) into
 *       one [N,3,H,W] float32 .npy; these are the tensors all three
 *       implementations get.
 *   dp_run_tensors run MODEL.onnx IN.npy [--threads T] [--batch B]
 *                      --output NAME OUT.npy [--output NAME OUT.npy ...]
 *       run the ONNX model with doppel's engine, asking for the named tensors
 *       (dp_model_params.outputs), B images per dp_model_run, and write each
 *       tensor over all N images to its .npy.
 *
 * Exit status 0 on success, 1 with a message naming the file on failure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doppel/image.h"
#include "doppel/model.h"

#define MAX_OUTPUTS 8

typedef struct npy {
    int ndim;
    int64_t dims[DP_MAX_DIMS];
    float *data;
    size_t count;
} npy;

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "dp_run_tensors: %s: %s\n", what, detail);
    return 1;
}

static int write_npy(const char *path, const int64_t *dims, int ndim, const float *data)
{
    char header[256];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld,%s", (long long)dims[i],
                      i + 1 < ndim ? " " : "");
        count *= (size_t)dims[i];
    }
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* Pad so that magic(6)+version(2)+len(2)+header ends on a 64-byte boundary. */
    while ((10 + n + 1) % 64)
        header[n++] = ' ';
    header[n++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return fail(path, strerror(errno));
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n &&
             fwrite(data, sizeof(float), count, f) == count;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : fail(path, "write failed");
}

static int read_npy(const char *path, npy *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(path, strerror(errno));
    unsigned char pre[10];
    char header[1024];
    int rc = 1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
        fail(path, "not a version 1 .npy file");
        goto done;
    }
    size_t hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    if (hlen >= sizeof header || fread(header, 1, hlen, f) != hlen) {
        fail(path, "bad .npy header length");
        goto done;
    }
    header[hlen] = 0;
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False")) {
        fail(path, "expected little-endian float32 in C order");
        goto done;
    }
    const char *s = strstr(header, "'shape': (");
    if (!s) {
        fail(path, "no shape in .npy header");
        goto done;
    }
    s += strlen("'shape': (");
    size_t count = 1;
    while (*s && *s != ')') {
        char *end;
        long long d = strtoll(s, &end, 10);
        if (end == s || d <= 0 || out->ndim == DP_MAX_DIMS ||
            count > ((size_t)1 << 34) / (size_t)d) {
            fail(path, "bad or too large shape in .npy header");
            goto done;
        }
        out->dims[out->ndim++] = d;
        count *= (size_t)d;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    out->data = malloc(count * sizeof(float));
    if (!out->data) {
        fail(path, "out of memory");
        goto done;
    }
    if (fread(out->data, sizeof(float), count, f) != count || fgetc(f) != EOF) {
        fail(path, "data size does not match the shape");
        goto done;
    }
    out->count = count;
    rc = 0;
done:
    fclose(f);
    if (rc) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

static int cmd_preprocess(int argc, char **argv)
{
    dp_preprocess p = dp_preprocess_default();
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc) return fail(argv[i], "missing value");
        if (!strcmp(argv[i], "--size")) {
            if (sscanf(argv[i + 1], "%dx%d", &p.width, &p.height) != 2 || p.width < 1 ||
                p.height < 1 || p.width > 4096 || p.height > 4096)
                return fail("--size", "expected WxH");
        } else if (!strcmp(argv[i], "--scale")) {
            p.scale = strtof(argv[i + 1], NULL);
        } else {
            return fail(argv[i], "unknown option");
        }
    }
    if (argc - i < 2) return fail("preprocess", "usage: --size WxH [--scale S] OUT.npy IMAGE...");
    const char *outp = argv[i++];
    size_t n = (size_t)(argc - i), per = (size_t)3 * (size_t)p.width * (size_t)p.height;
    float *buf = malloc(n * per * sizeof(float));
    if (!buf) return fail("preprocess", "out of memory");
    for (size_t k = 0; k < n; k++) {
        if (dp_image_load_tensor(argv[i + (int)k], &p, buf + k * per, NULL)) {
            fail(argv[i + (int)k], dp_last_error());
            free(buf);
            return 1;
        }
    }
    int64_t dims[4] = {(int64_t)n, 3, p.height, p.width};
    int rc = write_npy(outp, dims, 4, buf);
    free(buf);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    if (argc < 2)
        return fail("run",
                    "usage: MODEL.onnx IN.npy [--threads T] [--batch B] --output NAME OUT.npy...");
    const char *model_path = argv[0], *in_path = argv[1];
    const char *names[MAX_OUTPUTS], *paths[MAX_OUTPUTS];
    size_t n_out = 0;
    int threads = 0, batch = 8;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--output") && i + 2 < argc && n_out < MAX_OUTPUTS) {
            names[n_out] = argv[i + 1];
            paths[n_out++] = argv[i + 2];
            i += 2;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else {
            return fail(argv[i], "unknown or incomplete option");
        }
    }
    if (!n_out || batch < 1) return fail("run", "need at least one --output and --batch >= 1");

    npy x;
    if (read_npy(in_path, &x)) return 1;
    if (x.ndim != 4) {
        free(x.data);
        return fail(in_path, "expected a [N,3,H,W] tensor");
    }
    dp_model_params mp = dp_model_default_params();
    mp.threads = threads;
    mp.outputs = names;
    mp.n_outputs = n_out;
    dp_model *m = NULL;
    float *outs[MAX_OUTPUTS] = {0};
    int64_t odims[MAX_OUTPUTS][DP_MAX_DIMS];
    int ondim[MAX_OUTPUTS];
    size_t per_out[MAX_OUTPUTS];
    int rc = 1;
    if (dp_model_open(model_path, &mp, &m)) {
        fail(model_path, dp_last_error());
        goto done;
    }
    const int64_t n = x.dims[0];
    const size_t per_in = x.count / (size_t)n;
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        int64_t nb = n - b0 < batch ? n - b0 : batch;
        dp_tensor in = {.name = NULL,
                        .dtype = DP_F32,
                        .ndim = 4,
                        .dims = {nb, x.dims[1], x.dims[2], x.dims[3]},
                        .data = x.data + (size_t)b0 * per_in};
        if (dp_model_run(m, &in, 1)) {
            fail(model_path, dp_last_error());
            goto done;
        }
        for (size_t o = 0; o < n_out; o++) {
            dp_tensor t;
            if (dp_model_output(m, names[o], &t)) {
                fail(names[o], dp_last_error());
                goto done;
            }
            if (t.dtype != DP_F32 || t.ndim < 1 || t.dims[0] != nb) {
                fail(names[o], "output is not float32 with the batch as first dim");
                goto done;
            }
            size_t per = 1;
            for (int d = 1; d < t.ndim; d++)
                per *= (size_t)t.dims[d];
            if (!outs[o]) {
                per_out[o] = per;
                ondim[o] = t.ndim;
                memcpy(odims[o], t.dims, sizeof t.dims);
                odims[o][0] = n;
                outs[o] = malloc((size_t)n * per * sizeof(float));
                if (!outs[o]) {
                    fail(names[o], "out of memory");
                    goto done;
                }
            } else if (per != per_out[o]) {
                fail(names[o], "output size changed between batches");
                goto done;
            }
            memcpy(outs[o] + (size_t)b0 * per, t.data, (size_t)nb * per * sizeof(float));
        }
    }
    for (size_t o = 0; o < n_out; o++)
        if (write_npy(paths[o], odims[o], ondim[o], outs[o])) goto done;
    rc = 0;
done:
    for (size_t o = 0; o < n_out; o++)
        free(outs[o]);
    dp_model_free(m);
    free(x.data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "preprocess")) return cmd_preprocess(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    fprintf(stderr, "usage: dp_run_tensors preprocess --size WxH [--scale S] OUT.npy IMAGE...\n"
                    "       dp_run_tensors run MODEL.onnx IN.npy [--threads T] [--batch B] "
                    "--output NAME OUT.npy...\n");
    return 2;
}
