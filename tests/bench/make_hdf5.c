/* Writes small ann-benchmarks-style HDF5 files for tests/bench_ann.cmake,
 * with the HDF5 C API (no h5py needed): a Euclidean and an angular set whose
 * neighbors and distances come from a brute-force scan done here, and
 * malformed variants the loader must refuse with a clear message.
 *
 *   make_hdf5 DIR    writes DIR/{euclidean,angular,no-neighbors,bad-dim,
 *                    bad-id,hamming,rank3}.hdf5 and DIR/not-hdf5.hdf5 */
#include <hdf5.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 2000
#define NQ 50
#define D 16
#define K 100

static uint64_t rs = 88172645463325252ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
}

/* clustered rows (ANN graphs reach high recall on them quickly) */
static void fill(float *x, size_t n, const float *c, int nc)
{
    for (size_t i = 0; i < n; i++) {
        int k = (int)(urand() * nc) % nc;
        for (int j = 0; j < D; j++)
            x[i * D + j] =
                c[k * D + j] + (float)(0.3 * sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()));
    }
}

static double dist(int angular, const float *a, const float *b)
{
    double s = 0, aa = 0, bb = 0;
    for (int j = 0; j < D; j++) {
        if (angular) {
            s += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        } else {
            s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
        }
    }
    return angular ? 1 - s / sqrt(aa * bb) : sqrt(s);
}

static int write_2d(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *data,
                    hsize_t r, hsize_t c)
{
    hsize_t dims[2] = {r, c};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds < 0 || H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return rc;
}

/* As h5py writes a Python str attribute: variable-length UTF-8. */
static int write_metric(hid_t f, const char *metric)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "distance", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, t, &metric) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

enum { GOOD, NO_NEIGHBORS, BAD_DIM, BAD_ID, RANK3 };

static int write_set(const char *dir, const char *file, const char *metric, int variant)
{
    int angular = !strcmp(metric, "angular");
    static float c[32 * D], x[N * D], q[NQ * D], dd[NQ * K];
    static int32_t nb[NQ * K];
    static double drow[N];
    rs = 88172645463325252ull;
    for (int i = 0; i < 32 * D; i++)
        c[i] = (float)(2 * urand() - 1);
    fill(x, N, c, 32);
    fill(q, NQ, c, 32);
    for (int i = 0; i < NQ; i++) {
        for (int j = 0; j < N; j++)
            drow[j] = dist(angular, q + i * D, x + j * D);
        /* selection of the K nearest, ties by the smaller row */
        for (int m = 0; m < K; m++) {
            int best = -1;
            for (int j = 0; j < N; j++)
                if (drow[j] >= 0 && (best < 0 || drow[j] < drow[best])) best = j;
            nb[i * K + m] = best;
            dd[i * K + m] = (float)drow[best];
            drow[best] = -1;
        }
    }
    if (variant == BAD_ID) nb[7 * K + 3] = N + 5;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = write_metric(f, metric);
    /* train as float64 and neighbors as int64, as some converters write them:
     * the loader must convert */
    static double x64[N * D];
    for (int i = 0; i < N * D; i++)
        x64[i] = x[i];
    if (variant == RANK3) {
        hsize_t dims[3] = {N, D / 2, 2};
        hid_t sp = H5Screate_simple(3, dims, NULL);
        hid_t ds =
            H5Dcreate2(f, "train", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc |= H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0;
        H5Dclose(ds);
        H5Sclose(sp);
    } else {
        rc |= write_2d(f, "train", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x64, N, D);
    }
    rc |= write_2d(f, "test", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, q, NQ,
                   variant == BAD_DIM ? D / 2 : D);
    if (variant != NO_NEIGHBORS) {
        static int64_t nb64[NQ * K];
        for (int i = 0; i < NQ * K; i++)
            nb64[i] = nb[i];
        rc |= write_2d(f, "neighbors", H5T_STD_I64LE, H5T_NATIVE_INT64, nb64, NQ, K);
    }
    rc |= write_2d(f, "distances", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, dd, NQ, K);
    H5Fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_hdf5 DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    if (write_set(dir, "euclidean.hdf5", "euclidean", GOOD) ||
        write_set(dir, "angular.hdf5", "angular", GOOD) ||
        write_set(dir, "no-neighbors.hdf5", "euclidean", NO_NEIGHBORS) ||
        write_set(dir, "bad-dim.hdf5", "euclidean", BAD_DIM) ||
        write_set(dir, "bad-id.hdf5", "euclidean", BAD_ID) ||
        write_set(dir, "hamming.hdf5", "hamming", GOOD) ||
        write_set(dir, "rank3.hdf5", "euclidean", RANK3)) {
        fprintf(stderr, "make_hdf5: cannot write the files in %s\n", dir);
        return 1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/not-hdf5.hdf5", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs("train,test\n1,2\n", f) < 0 || fclose(f)) return 1;
    return 0;
}
