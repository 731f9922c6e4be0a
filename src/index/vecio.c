/* Vector files brought from elsewhere: NumPy .npy (2-D, little-endian f4 or
 * f8, C order) and TEXMEX .fvecs (per row: int32 dim, then dim float32).
 * Every size comes from the file, so each is checked against its length. */
#include "doppel/index.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BYTES ((size_t)16 << 30)
#define MAX_DIM 65536

/* Find 'key': in a Python dict literal and return what follows. */
static const char *dict_value(const char *h, size_t hl, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 2 <= hl; i++) {
        if ((h[i] == '\'' || h[i] == '"') && !memcmp(h + i + 1, key, kl) && h[i + 1 + kl] == h[i]) {
            const char *p = h + i + kl + 2;
            while (p < h + hl && (*p == ' ' || *p == ':'))
                p++;
            return p < h + hl ? p : NULL;
        }
    }
    return NULL;
}

static int parse_npy(const char *path, const unsigned char *b, size_t n, float **data, size_t *rows,
                     size_t *dim)
{
    if (n < 10) return dp_set_error(DP_ERR_FORMAT, "%s: truncated .npy header", path);
    unsigned major = b[6];
    size_t hl, hoff;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) return dp_set_error(DP_ERR_FORMAT, "%s: truncated .npy header", path);
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hoff = 12;
    } else {
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: .npy format version %u", path, major);
    }
    if (hl > n - hoff || hl > 65536)
        return dp_set_error(DP_ERR_FORMAT, "%s: .npy header runs past the end of the file", path);
    char hdr[65537];
    memcpy(hdr, b + hoff, hl);
    hdr[hl] = '\0';
    const char *descr = dict_value(hdr, hl, "descr");
    const char *fo = dict_value(hdr, hl, "fortran_order");
    const char *shape = dict_value(hdr, hl, "shape");
    if (!descr || !fo || !shape)
        return dp_set_error(DP_ERR_FORMAT, "%s: .npy header lacks descr, fortran_order or shape",
                            path);
    int f8;
    if (!strncmp(descr + 1, "<f4", 3) || !strncmp(descr + 1, "f4", 2))
        f8 = 0;
    else if (!strncmp(descr + 1, "<f8", 3) || !strncmp(descr + 1, "f8", 2))
        f8 = 1;
    else
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "%s: .npy dtype must be little-endian float32 or float64", path);
    if (strncmp(fo, "False", 5))
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: Fortran-order .npy arrays are not supported",
                            path);
    if (*shape != '(') return dp_set_error(DP_ERR_FORMAT, "%s: bad .npy shape", path);
    unsigned long long dims[3];
    int nd = 0;
    const char *p = shape + 1;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == ')') break;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || nd == 3) return dp_set_error(DP_ERR_FORMAT, "%s: bad .npy shape", path);
        dims[nd++] = v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',') p++;
    }
    if (nd != 2)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: expected a 2-D array, got %d dimensions", path,
                            nd);
    if (dims[1] < 1 || dims[1] > MAX_DIM)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: dimension %llu is not in 1..%d", path, dims[1],
                            MAX_DIM);
    size_t count, bytes, es = f8 ? 8 : 4;
    if (!dp_mul_ok((size_t)dims[0], (size_t)dims[1], &count) || !dp_mul_ok(count, es, &bytes) ||
        bytes != n - hoff - hl)
        return dp_set_error(
            DP_ERR_FORMAT, "%s: shape (%llu, %llu) needs %llu data bytes, the file has %zu", path,
            dims[0], dims[1], (unsigned long long)dims[0] * dims[1] * es, n - hoff - hl);
    float *out = malloc(count ? count * sizeof(float) : 1);
    if (!out) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", path);
    const unsigned char *src = b + hoff + hl;
    if (f8) {
        for (size_t i = 0; i < count; i++) {
            double v;
            memcpy(&v, src + i * 8, 8);
            out[i] = (float)v;
        }
    } else {
        memcpy(out, src, count * sizeof(float));
    }
    *data = out;
    *rows = (size_t)dims[0];
    *dim = (size_t)dims[1];
    return 0;
}

static int parse_fvecs(const char *path, const unsigned char *b, size_t n, float **data,
                       size_t *rows, size_t *dim)
{
    int32_t d;
    if (n < 4) return dp_set_error(DP_ERR_FORMAT, "%s: not a .npy or .fvecs file", path);
    memcpy(&d, b, 4);
    if (d < 1 || d > MAX_DIM)
        return dp_set_error(DP_ERR_FORMAT,
                            "%s: not a .npy file, and as .fvecs its dimension %d is not in 1..%d",
                            path, (int)d, MAX_DIM);
    size_t rec = 4 + (size_t)d * 4;
    if (n % rec)
        return dp_set_error(DP_ERR_FORMAT,
                            "%s: .fvecs size %zu is not a multiple of the %zu-byte record", path, n,
                            rec);
    size_t r = n / rec;
    float *out = malloc(r ? r * (size_t)d * sizeof(float) : 1);
    if (!out) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < r; i++) {
        int32_t di;
        memcpy(&di, b + i * rec, 4);
        if (di != d) {
            free(out);
            return dp_set_error(DP_ERR_FORMAT, "%s: .fvecs row %zu has dimension %d, row 0 has %d",
                                path, i, (int)di, (int)d);
        }
        memcpy(out + i * (size_t)d, b + i * rec + 4, (size_t)d * 4);
    }
    *data = out;
    *rows = r;
    *dim = (size_t)d;
    return 0;
}

int dp_vectors_load(const char *path, size_t max_bytes, float **data, size_t *n, size_t *dim)
{
    *data = NULL;
    *n = *dim = 0;
    void *buf;
    size_t len;
    int rc = dp_read_file(path, max_bytes ? max_bytes : DEFAULT_MAX_BYTES, &buf, &len);
    if (rc) return rc;
    if (len >= 6 && !memcmp(buf, "\x93NUMPY", 6))
        rc = parse_npy(path, buf, len, data, n, dim);
    else
        rc = parse_fvecs(path, buf, len, data, n, dim);
    free(buf);
    return rc;
}
