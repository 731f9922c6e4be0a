/* ONNX conformance: runs the official node tests (Debian's libonnx-testdata)
 * through dp_model_open/run and compares every output with the suite's
 * tolerance (rtol 1e-3, atol 1e-7, as onnx/backend/test/runner does).
 *
 * A model the engine refuses at open time with DP_ERR_UNSUPPORTED is a skip
 * (unclaimed op, attribute value or dtype) and its reason is printed; any
 * other failure of a case is a failure, and the test exits nonzero.
 *
 * usage: onnx_node_tests [-v] [-f substring] DIR...   (DIR holds test_* dirs) */
#include "doppel/model.h"
#include "nn/nn.h"
#include "onnx/onnx.pb-c.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RTOL 1e-3
#define ATOL 1e-7

typedef struct tensor {
    char name[256];
    int dtype, ndim;
    int64_t dims[DP_MAX_DIMS];
    void *data;
} tensor;

static int load_pb(const char *path, tensor *t)
{
    void *buf;
    size_t size;
    memset(t, 0, sizeof *t);
    if (dp_read_file(path, (size_t)1 << 30, &buf, &size)) return -1;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, buf);
    free(buf);
    if (!tp) {
        dp_set_error(DP_ERR_FORMAT, "%s: not a TensorProto", path);
        return -1;
    }
    if (tp->name) snprintf(t->name, sizeof t->name, "%s", tp->name);
    int rc = nn_tensor_from_proto(tp, &t->dtype, &t->ndim, t->dims, &t->data, (size_t)1 << 31);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc ? -1 : 0;
}

static int64_t numel(const tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dims[i];
    return n;
}

static int cmp_sort(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns 0 pass, 1 fail, 2 skip. */
static int run_case(const char *dir, const char *name, char *why, size_t why_len, bool verbose)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, name);
    dp_model *m = NULL;
    dp_model_params prm = dp_model_default_params();
    prm.threads = 1;
    int rc = dp_model_open(path, &prm, &m);
    if (rc) {
        snprintf(why, why_len, "%s", dp_last_error());
        return rc == DP_ERR_UNSUPPORTED ? 2 : 1;
    }
    dp_model_info info;
    dp_model_describe(m, &info);
    int result = 0;
    for (int set = 0; set < 100 && result == 0; set++) {
        char sdir[700];
        struct stat st;
        snprintf(sdir, sizeof sdir, "%s/%s/test_data_set_%d", dir, name, set);
        if (stat(sdir, &st) != 0) break;
        tensor ins[16], outs[16];
        int nin = 0, nout = 0;
        for (int k = 0; k < 16; k++) {
            snprintf(path, sizeof path, "%s/input_%d.pb", sdir, k);
            if (stat(path, &st) != 0) break;
            if (load_pb(path, &ins[nin])) {
                snprintf(why, why_len, "cannot read %s: %s", path, dp_last_error());
                result = 2;
                goto next;
            }
            nin++;
        }
        for (int k = 0; k < 16; k++) {
            snprintf(path, sizeof path, "%s/output_%d.pb", sdir, k);
            if (stat(path, &st) != 0) break;
            if (load_pb(path, &outs[nout])) {
                snprintf(why, why_len, "cannot read %s: %s", path, dp_last_error());
                result = 2;
                goto next;
            }
            nout++;
        }
        {
            dp_tensor tin[16];
            size_t n_feed = 0;
            /* feed by position among the runtime inputs; optional inputs the
             * graph does not declare are not fed */
            for (int k = 0; k < nin && n_feed < info.n_inputs; k++) {
                dp_tensor decl;
                if (dp_model_input(m, n_feed, &decl)) break;
                memset(&tin[n_feed], 0, sizeof tin[n_feed]);
                tin[n_feed].name = decl.name;
                tin[n_feed].dtype = ins[k].dtype;
                tin[n_feed].ndim = ins[k].ndim;
                memcpy(tin[n_feed].dims, ins[k].dims, sizeof ins[k].dims);
                tin[n_feed].data = ins[k].data;
                n_feed++;
            }
            if ((rc = dp_model_run(m, tin, n_feed))) {
                /* parameter inputs (axes, training_mode...) are only seen at
                 * run time, so an unclaimed value is refused there */
                snprintf(why, why_len, "run: %s", dp_last_error());
                result = rc == DP_ERR_UNSUPPORTED ? 2 : 1;
                goto next;
            }
            for (int k = 0; k < nout && result == 0; k++) {
                dp_tensor decl, got;
                if (dp_model_output_info(m, (size_t)k, &decl) ||
                    dp_model_output(m, decl.name, &got)) {
                    snprintf(why, why_len, "output %d: %s", k, dp_last_error());
                    result = 1;
                    break;
                }
                tensor *e = &outs[k];
                if (got.dtype != e->dtype || got.ndim != e->ndim ||
                    memcmp(got.dims, e->dims, (size_t)e->ndim * sizeof *e->dims)) {
                    char gs[128] = "", es[128] = "";
                    for (int i = 0; i < got.ndim; i++)
                        snprintf(gs + strlen(gs), sizeof gs - strlen(gs), "%lld,",
                                 (long long)got.dims[i]);
                    for (int i = 0; i < e->ndim; i++)
                        snprintf(es + strlen(es), sizeof es - strlen(es), "%lld,",
                                 (long long)e->dims[i]);
                    snprintf(why, why_len,
                             "output %d: got dtype %d shape [%s], expected dtype "
                             "%d shape [%s]",
                             k, got.dtype, gs, e->dtype, es);
                    result = 1;
                    break;
                }
                int64_t cnt = numel(e), bad = 0, first = -1;
                double worst = 0;
                for (int64_t i = 0; i < cnt; i++) {
                    double a, b;
                    if (e->dtype == DP_F32) {
                        a = ((float *)got.data)[i];
                        b = ((float *)e->data)[i];
                    } else if (e->dtype == DP_I64) {
                        a = (double)((int64_t *)got.data)[i];
                        b = (double)((int64_t *)e->data)[i];
                    } else if (e->dtype == DP_I32) {
                        a = ((int32_t *)got.data)[i];
                        b = ((int32_t *)e->data)[i];
                    } else {
                        a = ((uint8_t *)got.data)[i];
                        b = ((uint8_t *)e->data)[i];
                    }
                    bool ok = (isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && a == b) ||
                              fabs(a - b) <= ATOL + RTOL * fabs(b);
                    if (!ok) {
                        if (first < 0) first = i;
                        bad++;
                        if (fabs(a - b) > worst) worst = fabs(a - b);
                    }
                }
                if (bad) {
                    double a = e->dtype == DP_F32 ? ((float *)got.data)[first] : 0;
                    double b = e->dtype == DP_F32 ? ((float *)e->data)[first] : 0;
                    snprintf(why, why_len,
                             "output %d: %lld of %lld values differ (first at %lld: "
                             "%g vs %g, max abs diff %g)",
                             k, (long long)bad, (long long)cnt, (long long)first, a, b, worst);
                    result = 1;
                }
            }
        }
    next:
        for (int k = 0; k < nin; k++)
            free(ins[k].data);
        for (int k = 0; k < nout; k++)
            free(outs[k].data);
    }
    if (verbose && result == 0) fprintf(stderr, "ok %s\n", name);
    dp_model_free(m);
    return result;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    bool verbose = false;
    int passed = 0, failed = 0, skipped = 0;
    int ndirs = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-v")) {
            verbose = true;
            continue;
        }
        if (!strcmp(argv[a], "-f") && a + 1 < argc) {
            filter = argv[++a];
            continue;
        }
        ndirs++;
        const char *dir = argv[a];
        DIR *d = opendir(dir);
        if (!d) {
            fprintf(stderr, "cannot open %s\n", dir);
            return 2;
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, "test_", 5)) continue;
            if (filter && !strstr(de->d_name, filter)) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                names = realloc(names, cap * sizeof *names);
            }
            names[n++] = strdup(de->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp_sort);
        for (size_t i = 0; i < n; i++) {
            char why[1200] = "";
            int r = run_case(dir, names[i], why, sizeof why, verbose);
            if (r == 0)
                passed++;
            else if (r == 1) {
                failed++;
                printf("FAIL %s: %s\n", names[i], why);
            } else {
                skipped++;
                printf("skip %s: %s\n", names[i], why);
            }
            fflush(stdout);
            free(names[i]);
        }
        free(names);
    }
    if (!ndirs) {
        fprintf(stderr, "usage: %s [-v] [-f substring] DIR...\n", argv[0]);
        return 2;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
