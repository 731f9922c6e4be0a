#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int dp_read_file(const char *path, size_t max_bytes, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dp_set_error(DP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dp_set_error(DP_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dp_set_error(DP_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return dp_set_error(DP_ERR_NOMEM, "%s: file is %lld bytes, above the limit of %zu", path,
                            (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return dp_set_error(DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return dp_set_error(DP_ERR_IO, "%s: %s", path, e ? strerror(e) : "short read");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return 0;
}

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

int dp_write_file_atomic(const char *path, const void *data, size_t size)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    char *dirc = strdup(path);
    if (!tmp || !dirc) {
        free(tmp);
        free(dirc);
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, n + 32, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        free(dirc);
        return dp_set_error(DP_ERR_IO, "%s: cannot create temp file: %s", path, strerror(e));
    }
    if (write_all(fd, data, size) != 0 || fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        free(dirc);
        return dp_set_error(DP_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        free(dirc);
        return dp_set_error(DP_ERR_IO, "%s: rename failed: %s", path, strerror(e));
    }
    int dfd = open(dirname(dirc), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(tmp);
    free(dirc);
    return 0;
}

void dp_sha256_hex(const void *data, size_t size, char out[65])
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(c, data, (gssize)size);
    snprintf(out, 65, "%s", g_checksum_get_string(c));
    g_checksum_free(c);
}

int dp_sha256_file(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return dp_set_error(DP_ERR_IO, "%s: %s", path, strerror(errno));
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    unsigned char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        g_checksum_update(c, buf, (gssize)r);
    int err = ferror(f);
    fclose(f);
    snprintf(out, 65, "%s", g_checksum_get_string(c));
    g_checksum_free(c);
    if (err) return dp_set_error(DP_ERR_IO, "%s: read error", path);
    return 0;
}

int dp_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims)
{
    char shape[256] = "";
    size_t count = 1;
    int off = 0;
    for (int i = 0; i < ndim; i++) {
        off += snprintf(shape + off, sizeof shape - (size_t)off, "%lld,%s", (long long)dims[i],
                        (i + 1 < ndim) ? " " : "");
        if (!dp_mul_ok(count, (size_t)dims[i], &count))
            return dp_set_error(DP_ERR_INVALID, "%s: array too large", path);
    }
    if (ndim > 1) shape[strlen(shape) - 1] = '\0'; /* "(2, 3)" not "(2, 3,)" */
    char header[512];
    int hl = snprintf(header, sizeof header,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
    /* magic(6) + version(2) + len(2) + header, padded with spaces to 64, ends in \n */
    size_t total_hdr = 10 + (size_t)hl + 1;
    size_t pad = (64 - total_hdr % 64) % 64;
    size_t hlen = (size_t)hl + pad + 1;
    size_t bytes;
    if (!dp_mul_ok(count, sizeof(float), &bytes) || !dp_add_ok(bytes, 10 + hlen, &bytes))
        return dp_set_error(DP_ERR_INVALID, "%s: array too large", path);
    unsigned char *buf = malloc(bytes);
    if (!buf) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, header, (size_t)hl);
    memset(buf + 10 + hl, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, data, count * sizeof(float));
    int rc = dp_write_file_atomic(path, buf, bytes);
    free(buf);
    return rc;
}

static dp_cpu g_cpu;
static int g_cpu_done;

const dp_cpu *dp_cpu_features(void)
{
    if (!__atomic_load_n(&g_cpu_done, __ATOMIC_ACQUIRE)) {
        dp_cpu c = {0};
        __builtin_cpu_init();
        c.avx2 = __builtin_cpu_supports("avx2");
        c.fma = __builtin_cpu_supports("fma");
        c.avx512f = __builtin_cpu_supports("avx512f");
        c.avx512bw = __builtin_cpu_supports("avx512bw");
        c.avx512vl = __builtin_cpu_supports("avx512vl");
        g_cpu = c;
        __atomic_store_n(&g_cpu_done, 1, __ATOMIC_RELEASE);
    }
    return &g_cpu;
}

double dp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
