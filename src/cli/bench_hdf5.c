/* ann-benchmarks' HDF5 datasets (sift-128-euclidean.hdf5, glove-100-angular.hdf5,
 * ...): train, test, neighbors and distances as 2-D datasets and the metric
 * in the root's `distance` attribute. HDF5 converts whatever numeric type
 * the file holds into ours on read, so float64 or int64 variants load too.
 * Linked into the command only (libhdf5 is optional: without it the loader
 * says so). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DP_HAVE_HDF5
#include <hdf5.h>

#define MAX_DIM 65536
#define MAX_GT_K 10000
#define MAX_ELEMS ((hsize_t)8 << 30)

bool dp_bench_have_hdf5(void)
{
    return true;
}

/* Read a 2-D numeric dataset as mem_type; rows/cols from the file. */
static void *read_2d(hid_t f, const char *path, const char *name, hid_t mem_type, size_t esize,
                     size_t *rows, size_t *cols)
{
    void *buf = NULL;
    hid_t ds = -1, sp = -1, ty = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        fprintf(stderr, "doppel bench: %s: no dataset '%s' (not an ann-benchmarks file?)\n", path,
                name);
        return NULL;
    }
    if ((ds = H5Dopen2(f, name, H5P_DEFAULT)) < 0 || (sp = H5Dget_space(ds)) < 0 ||
        (ty = H5Dget_type(ds)) < 0) {
        fprintf(stderr, "doppel bench: %s: '%s' is not a readable dataset\n", path, name);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ty);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        fprintf(stderr, "doppel bench: %s: dataset '%s' is not numeric\n", path, name);
        goto done;
    }
    hsize_t dims[2];
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) != 2) {
        fprintf(stderr, "doppel bench: %s: dataset '%s' has %d dimensions, expected 2\n", path,
                name, nd);
        goto done;
    }
    if (dims[0] < 1 || dims[1] < 1 || dims[1] > MAX_DIM || dims[0] > MAX_ELEMS / dims[1]) {
        fprintf(stderr, "doppel bench: %s: dataset '%s' has an unusable shape %llu x %llu\n", path,
                name, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto done;
    }
    buf = malloc((size_t)(dims[0] * dims[1]) * esize);
    if (!buf) {
        fprintf(stderr, "doppel bench: %s: out of memory for '%s' (%llu x %llu)\n", path, name,
                (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto done;
    }
    if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "doppel bench: %s: cannot read dataset '%s' (damaged or truncated?)\n",
                path, name);
        free(buf);
        buf = NULL;
        goto done;
    }
    *rows = (size_t)dims[0];
    *cols = (size_t)dims[1];
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return buf;
}

/* The root attribute `distance`: h5py writes Python strings as variable
 * length; other writers use fixed-size strings. */
static int read_metric(hid_t f, const char *path, char *out, size_t cap)
{
    if (H5Aexists(f, "distance") <= 0) {
        fprintf(stderr, "doppel bench: %s: no 'distance' attribute naming the metric\n", path);
        return -1;
    }
    hid_t a = H5Aopen(f, "distance", H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
    int rc = -1;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        fprintf(stderr, "doppel bench: %s: the 'distance' attribute is not a string\n", path);
        goto done;
    }
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) >= 0 && s) {
            snprintf(out, cap, "%s", s);
            H5free_memory(s);
            rc = 0;
        }
    } else {
        size_t sz = H5Tget_size(t);
        char *s = calloc(sz + 1, 1);
        H5Tset_size(mt, sz + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (s && H5Aread(a, mt, s) >= 0) {
            snprintf(out, cap, "%s", s);
            rc = 0;
        }
        free(s);
    }
    H5Tclose(mt);
    if (rc) fprintf(stderr, "doppel bench: %s: cannot read the 'distance' attribute\n", path);
done:
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

int dp_bench_load_hdf5(const char *path, dp_bench_set *out)
{
    memset(out, 0, sizeof *out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages, not HDF5's stack dump */
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fprintf(stderr, "doppel bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) {
        fprintf(stderr, "doppel bench: %s: not an HDF5 file\n", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "doppel bench: %s: cannot open the HDF5 file\n", path);
        return -1;
    }
    char metric[64];
    size_t n, d, nq, dq, gn, gk, dn = 0, dk = 0;
    float *dist = NULL;
    if (read_metric(f, path, metric, sizeof metric)) goto fail;
    if (!strcmp(metric, "euclidean"))
        out->metric = DP_BENCH_EUCLIDEAN;
    else if (!strcmp(metric, "angular"))
        out->metric = DP_BENCH_ANGULAR;
    else {
        fprintf(stderr, "doppel bench: %s: distance '%s' is not supported (euclidean or angular)\n",
                path, metric);
        goto fail;
    }
    if (!(out->base = read_2d(f, path, "train", H5T_NATIVE_FLOAT, 4, &n, &d))) goto fail;
    if (!(out->queries = read_2d(f, path, "test", H5T_NATIVE_FLOAT, 4, &nq, &dq))) goto fail;
    if (dq != d) {
        fprintf(stderr, "doppel bench: %s: 'test' rows have %zu dimensions, 'train' rows %zu\n",
                path, dq, d);
        goto fail;
    }
    if (!(out->gt = read_2d(f, path, "neighbors", H5T_NATIVE_INT32, 4, &gn, &gk))) goto fail;
    if (gn != nq || gk > MAX_GT_K) {
        fprintf(
            stderr,
            "doppel bench: %s: 'neighbors' is %zu x %zu; expected one row per 'test' row (%zu)\n",
            path, gn, gk, nq);
        goto fail;
    }
    for (size_t i = 0; i < gn * gk; i++)
        if (out->gt[i] < 0 || (size_t)out->gt[i] >= n) {
            fprintf(stderr,
                    "doppel bench: %s: 'neighbors' row %zu names row %d; 'train' has %zu rows\n",
                    path, i / gk, (int)out->gt[i], n);
            goto fail;
        }
    if (H5Lexists(f, "distances", H5P_DEFAULT) > 0) {
        dist = read_2d(f, path, "distances", H5T_NATIVE_FLOAT, 4, &dn, &dk);
        if (!dist) goto fail;
        if (dn != gn || dk != gk) {
            fprintf(stderr, "doppel bench: %s: 'distances' is %zu x %zu, 'neighbors' %zu x %zu\n",
                    path, dn, dk, gn, gk);
            goto fail;
        }
        free(dist);
    }
    H5Fclose(f);
    out->n = n;
    out->nq = nq;
    out->dim = d;
    out->gt_k = gk;
    if (out->metric == DP_BENCH_ANGULAR)
        for (int pass = 0; pass < 2; pass++) {
            float *x = pass ? out->queries : out->base;
            size_t rows = pass ? nq : n;
            for (size_t i = 0; i < rows; i++) {
                double s = 0;
                for (size_t j = 0; j < d; j++)
                    s += (double)x[i * d + j] * x[i * d + j];
                if (s > 0)
                    for (size_t j = 0; j < d; j++)
                        x[i * d + j] = (float)(x[i * d + j] / sqrt(s));
            }
        }
    return 0;
fail:
    H5Fclose(f);
    dp_bench_set_free(out);
    return -1;
}

#else

bool dp_bench_have_hdf5(void)
{
    return false;
}

int dp_bench_load_hdf5(const char *path, dp_bench_set *out)
{
    memset(out, 0, sizeof *out);
    fprintf(stderr,
            "doppel bench: %s: this doppel was built without HDF5 support; install libhdf5-dev "
            "(scripts/deps.sh) and rebuild\n",
            path);
    return -1;
}

#endif
